package verify

import (
	"errors"
	"fmt"
	"strings"
)

// Reasons a signature or a package is rejected. Every error this package
// returns for a rejection wraps exactly one of them, for errors.Is.
var (
	// ErrBadSignature: the signature does not verify over the file (the
	// file or the signature was changed, or the signature is for another
	// file or SSH namespace).
	ErrBadSignature = errors.New("bad signature")
	// ErrUnknownKey: the signature was made by a key that is not in the
	// trust file.
	ErrUnknownKey = errors.New("unknown key")
	// ErrNotAllowed: a trusted key made a valid signature on a package that
	// is outside its allow list.
	ErrNotAllowed = errors.New("key not allowed for this package")
	// ErrKeyExpired: the key (or OpenPGP subkey) is past its not_after or
	// its OpenPGP expiry, or it made the signature after it expired.
	ErrKeyExpired = errors.New("key expired")
	// ErrKeyRevoked: the trust file marks the key revoked, or the OpenPGP
	// key or subkey carries a revocation.
	ErrKeyRevoked = errors.New("key revoked")
	// ErrKeyNotYetValid: now is before the key's not_before or the OpenPGP
	// key's creation, or the signature is older than its key.
	ErrKeyNotYetValid = errors.New("key not yet valid")
	// ErrSignatureExpired: an OpenPGP signature carries an expiry that has
	// passed, or is dated after now.
	ErrSignatureExpired = errors.New("signature expired or dated in the future")
	// ErrThreshold: fewer distinct trusted keys than the rule requires
	// signed the package validly.
	ErrThreshold = errors.New("signature threshold not met")
	// ErrUnsupported: an algorithm, key size or digest this package refuses
	// (SHA-1, MD5, DSA, RSA below 2048 bits, ssh-rsa SHA-1, ...).
	ErrUnsupported = errors.New("unsupported algorithm")
	// ErrWrongFile: a minisign signature whose trusted comment names
	// another file (`file:NAME`, which minisign writes by default) than the
	// one it is served with: a validly signed file substituted for another.
	ErrWrongFile = errors.New("signature made for another file")
	// ErrMalformed: a signature, package name or document that cannot be
	// parsed or exceeds a limit.
	ErrMalformed = errors.New("malformed input")
	// ErrTrustFile: the trust file (or Config) is invalid.
	ErrTrustFile = errors.New("invalid trust file")
)

// SignatureError is the reason one signature did not count.
type SignatureError struct {
	Signature string // the signature's name, e.g. "hello.tar.gz.asc"
	Key       KeyRef // the trusted key, when one was identified
	Reason    error  // one of the Err* sentinels
	Detail    string // what exactly, and what to do
}

func (e *SignatureError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "signature %s", e.Signature)
	if e.Key.Name != "" {
		fmt.Fprintf(&b, " by key %q (%s %s)", e.Key.Name, e.Key.Scheme, e.Key.ID)
	}
	fmt.Fprintf(&b, ": %v", e.Reason)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

func (e *SignatureError) Unwrap() error { return e.Reason }

// NotAllowedError is a valid signature by a trusted key whose allow list
// does not cover the package.
type NotAllowedError struct {
	Package   string
	Signature string
	Key       KeyRef
}

func (e *NotAllowedError) Error() string {
	return fmt.Sprintf("key %q is not allowed to sign %s (signature %s); add a matching glob to its allow list if it should",
		e.Key.Name, e.Package, e.Signature)
}

func (e *NotAllowedError) Unwrap() error { return ErrNotAllowed }

// ThresholdError says how many distinct keys a package needed and had.
type ThresholdError struct {
	Package string
	Need    int
	Have    int
	Keys    []string // names of the keys that passed
	// Failed says why the first other signatures did not count (a
	// revoked key, a key not allowed, a bad signature).
	Failed []string
}

func (e *ThresholdError) Error() string {
	got := "none"
	if len(e.Keys) > 0 {
		got = fmt.Sprintf("%d (%s)", e.Have, strings.Join(e.Keys, ", "))
	}
	msg := fmt.Sprintf("%s needs valid signatures by %d distinct trusted keys allowed for it, got %s", e.Package, e.Need, got)
	if len(e.Failed) > 0 {
		msg += "; not counted: " + strings.Join(e.Failed, "; ")
	}
	return msg + "; add signatures by other allowed keys or lower the rule's threshold"
}

func (e *ThresholdError) Unwrap() error { return ErrThreshold }

// TrustFileError is a problem in the trust file, located as precisely as
// possible.
type TrustFileError struct {
	File  string // empty for a Config given to NewPolicy
	Line  int    // 0 when unknown
	Key   string // the key's name (or "key #N"), or "rule #N"; empty for the whole file
	Field string // the field, when one is at fault
	Err   error

	item int  // 1-based index of the key or rule, 0 for none (for lineOf)
	rule bool // item counts rules
}

func (e *TrustFileError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else {
		b.WriteString("trust: ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *TrustFileError) Unwrap() []error { return []error{ErrTrustFile, e.Err} }
