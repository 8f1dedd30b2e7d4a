package minisign

// newLegacyVerifier verifies the legacy (non-prehashed) form. Pure Ed25519
// needs the whole message; the streaming implementation is still to come.
func newLegacyVerifier(k PublicKey, sig Signature) (Verifier, error) {
	return nil, ErrUnsupported
}
