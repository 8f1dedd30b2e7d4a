package minisign

import (
	"crypto/sha512"
	"hash"

	"filippo.io/edwards25519"
)

// legacyVerifier checks the legacy form, a pure Ed25519 signature over the
// whole message, in constant memory: Ed25519 verification hashes
// SHA-512(R || A || M) once and then checks [S]B = R + [k]A, so the message
// can be streamed into the hash instead of being held in memory as
// crypto/ed25519 requires. The checks are the ones crypto/ed25519.Verify
// makes: A must decode, S must be canonical (< l), and the encoding of
// [S]B - [k]A must equal R byte for byte.
type legacyVerifier struct {
	k   PublicKey
	sig Signature
	h   hash.Hash
}

func newLegacyVerifier(k PublicKey, sig Signature) (Verifier, error) {
	h := sha512.New()
	h.Write(sig.Sig[:32])
	h.Write(k.Key)
	return &legacyVerifier{k: k, sig: sig, h: h}, nil
}

func (v *legacyVerifier) Write(p []byte) (int, error) { return v.h.Write(p) }

func (v *legacyVerifier) Verify() error {
	if !verifyStreamed(v.k.Key, v.sig.Sig[:], v.h) {
		return ErrBadSignature
	}
	return verifyGlobal(v.k, v.sig)
}

// verifyStreamed finishes an Ed25519 verification whose hash h has already
// absorbed R || A || M.
func verifyStreamed(pub []byte, sig []byte, h hash.Hash) bool {
	A, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return false
	}
	S, err := new(edwards25519.Scalar).SetCanonicalBytes(sig[32:])
	if err != nil {
		return false
	}
	var digest [64]byte
	k, err := new(edwards25519.Scalar).SetUniformBytes(h.Sum(digest[:0]))
	if err != nil {
		return false
	}
	minusA := new(edwards25519.Point).Negate(A)
	R := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(k, minusA, S)
	return string(R.Bytes()) == string(sig[:32])
}

// SignLegacy makes a legacy signature (algorithm "Ed", pure Ed25519 over the
// whole message), as `minisign -S -l` does. Pure Ed25519 signing reads the
// message twice, so it takes the message in memory; new signatures should
// use the prehashed Sign.
func (k PrivateKey) SignLegacy(message []byte, trustedComment, untrustedComment string) (Signature, error) {
	return k.sign(message, false, trustedComment, untrustedComment)
}
