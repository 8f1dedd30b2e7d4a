// Package verify owns the trust decision: the operator's trust file (keys,
// what each key may sign, validity windows, revocations, k-of-n rules) and
// the verification of OpenPGP, minisign and SSH signatures against it.
//
// Bytes in, verdict out: no network, no clock (now is always passed in), no
// knowledge of bundles. Keys come from the trust file and nowhere else.
//
// The flow is Verify (cryptography and key validity at now; one Result per
// signature) then Decide (allow lists and thresholds for one package
// "source:name"); Check does both. A file is read once, in constant memory:
// every signature is parsed first, one hash per needed algorithm (or one
// minisign verifier per signature) is fed by a single copy of the file, and
// each check is finished afterwards. docs/trust.md is the reference.
package verify
