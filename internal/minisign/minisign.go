// Package minisign is a codec for minisign public keys and signatures
// (https://jedisct1.github.io/minisign/), used both to verify upstream
// signatures and to sign bundles with the operator key.
//
// Formats (all base64 payloads are standard encoding):
//
//	public key:  "untrusted comment: <text>\n" base64("Ed" || keyid[8] || pk[32]) "\n"
//	signature:   "untrusted comment: <text>\n" base64(alg[2] || keyid[8] || sig[64]) "\n"
//	             "trusted comment: <text>\n" base64(global_sig[64]) "\n"
//
// alg is "ED" for the prehashed form (sig = Ed25519(BLAKE2b-512(message)))
// and "Ed" for the legacy form (sig = Ed25519(message)). The global signature
// is Ed25519(sig || trusted comment) and binds the trusted comment. Both
// forms are verified while the message streams through, in constant memory
// (the legacy form with filippo.io/edwards25519; see legacy.go).
//
// Secret key files (ParsePrivateKey, PrivateKey.MarshalPrivate) are the
// stock tool's, encrypted with scrypt or not (-W); secret.go describes the
// layout. Every input is bounded: MaxSignatureSize, MaxCommentSize,
// MaxPrivateKeySize, and MaxKDFOpsLimit / MaxKDFMemLimit for the scrypt work
// a key file may ask for.
package minisign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"golang.org/x/crypto/blake2b"
)

// Limits on untrusted input.
const (
	// MaxSignatureSize bounds a signature file.
	MaxSignatureSize = 8 << 10
	// MaxCommentSize bounds a comment line.
	MaxCommentSize = 1 << 10
)

var (
	// ErrMalformed is returned for a key or signature that cannot be parsed.
	ErrMalformed = errors.New("malformed minisign data")
	// ErrUnsupported is returned for an algorithm this codec does not know.
	ErrUnsupported = errors.New("unsupported minisign algorithm")
	// ErrKeyMismatch is returned when a signature names another key id.
	ErrKeyMismatch = errors.New("signature was made by another key")
	// ErrBadSignature is returned when a signature does not verify.
	ErrBadSignature = errors.New("minisign signature does not verify")
)

var (
	algEd = [2]byte{'E', 'd'} // Ed25519 key, legacy signature
	algED = [2]byte{'E', 'D'} // prehashed signature
)

// KeyID is the 8-byte key number minisign stores beside keys and signatures.
type KeyID [8]byte

// String returns the key id as minisign prints it: 16 upper-case hex digits
// of the little-endian key number.
func (id KeyID) String() string {
	return fmt.Sprintf("%016X", binary.LittleEndian.Uint64(id[:]))
}

// PublicKey is a minisign Ed25519 public key.
type PublicKey struct {
	ID  KeyID
	Key ed25519.PublicKey
}

// ParsePublicKey accepts a minisign public key file (comment line and key
// line) or the bare base64 key line.
func ParsePublicKey(data []byte) (PublicKey, error) {
	if len(data) > MaxSignatureSize {
		return PublicKey{}, fmt.Errorf("%w: public key larger than %d bytes", ErrMalformed, MaxSignatureSize)
	}
	lines := splitLines(string(data))
	var keyLine string
	switch {
	case len(lines) == 1:
		keyLine = lines[0]
	case len(lines) == 2 && strings.HasPrefix(lines[0], "untrusted comment: "):
		keyLine = lines[1]
	default:
		return PublicKey{}, fmt.Errorf("%w: a public key is one base64 line, optionally after an 'untrusted comment:' line", ErrMalformed)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(keyLine)
	if err == nil && len(raw) == secretBlobSize {
		return PublicKey{}, fmt.Errorf("%w: this is a minisign secret key, not a public key: give its public key file (minisign -R -s SECRET -p PUBLIC writes it)", ErrMalformed)
	}
	if err != nil || len(raw) != 42 {
		return PublicKey{}, fmt.Errorf("%w: public key is not 42 bytes of base64", ErrMalformed)
	}
	if [2]byte(raw[:2]) != algEd {
		return PublicKey{}, fmt.Errorf("%w: public key algorithm %q", ErrUnsupported, raw[:2])
	}
	var k PublicKey
	copy(k.ID[:], raw[2:10])
	k.Key = ed25519.PublicKey(bytes.Clone(raw[10:42]))
	return k, nil
}

// String returns the base64 key line.
func (k PublicKey) String() string {
	raw := make([]byte, 0, 42)
	raw = append(raw, algEd[:]...)
	raw = append(raw, k.ID[:]...)
	raw = append(raw, k.Key...)
	return base64.StdEncoding.EncodeToString(raw)
}

// File returns the public key file minisign writes, byte for byte: its
// comment prints the key number without leading zeros (unlike String).
func (k PublicKey) File() []byte {
	id := fmt.Sprintf("%X", binary.LittleEndian.Uint64(k.ID[:]))
	return []byte("untrusted comment: minisign public key " + id + "\n" + k.String() + "\n")
}

// Signature is a parsed minisign signature file.
type Signature struct {
	Prehashed        bool
	KeyID            KeyID
	Sig              [64]byte
	UntrustedComment string
	TrustedComment   string
	GlobalSig        [64]byte
}

// ParseSignature parses a minisign signature file.
func ParseSignature(data []byte) (Signature, error) {
	if len(data) > MaxSignatureSize {
		return Signature{}, fmt.Errorf("%w: signature larger than %d bytes", ErrMalformed, MaxSignatureSize)
	}
	lines := splitLines(string(data))
	if len(lines) != 4 {
		return Signature{}, fmt.Errorf("%w: a signature file has 4 lines, got %d", ErrMalformed, len(lines))
	}
	var s Signature
	var ok bool
	if s.UntrustedComment, ok = strings.CutPrefix(lines[0], "untrusted comment: "); !ok {
		return Signature{}, fmt.Errorf("%w: line 1 is not an untrusted comment", ErrMalformed)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(lines[1])
	if err != nil || len(raw) != 74 {
		return Signature{}, fmt.Errorf("%w: line 2 is not 74 bytes of base64", ErrMalformed)
	}
	switch [2]byte(raw[:2]) {
	case algED:
		s.Prehashed = true
	case algEd:
	default:
		return Signature{}, fmt.Errorf("%w: signature algorithm %q", ErrUnsupported, raw[:2])
	}
	copy(s.KeyID[:], raw[2:10])
	copy(s.Sig[:], raw[10:74])
	if s.TrustedComment, ok = strings.CutPrefix(lines[2], "trusted comment: "); !ok {
		return Signature{}, fmt.Errorf("%w: line 3 is not a trusted comment", ErrMalformed)
	}
	if len(s.UntrustedComment) > MaxCommentSize || len(s.TrustedComment) > MaxCommentSize {
		return Signature{}, fmt.Errorf("%w: comment longer than %d bytes", ErrMalformed, MaxCommentSize)
	}
	// Stock minisign cuts a line at its first CR, so it would check the
	// global signature over a shorter trusted comment than the one here;
	// a NUL it refuses. Such a file is refused, not read two ways
	// (TestCommentsStockReadsDifferently).
	if strings.ContainsAny(s.UntrustedComment+s.TrustedComment, badCommentBytes) {
		return Signature{}, fmt.Errorf("%w: a comment holds a CR or a NUL byte", ErrMalformed)
	}
	g, err := base64.StdEncoding.Strict().DecodeString(lines[3])
	if err != nil || len(g) != 64 {
		return Signature{}, fmt.Errorf("%w: line 4 is not 64 bytes of base64", ErrMalformed)
	}
	copy(s.GlobalSig[:], g)
	return s, nil
}

// Marshal returns the signature file.
func (s Signature) Marshal() []byte {
	alg := algEd
	if s.Prehashed {
		alg = algED
	}
	raw := make([]byte, 0, 74)
	raw = append(raw, alg[:]...)
	raw = append(raw, s.KeyID[:]...)
	raw = append(raw, s.Sig[:]...)
	var b bytes.Buffer
	b.WriteString("untrusted comment: " + s.UntrustedComment + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n")
	b.WriteString("trusted comment: " + s.TrustedComment + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(s.GlobalSig[:]) + "\n")
	return b.Bytes()
}

// A Verifier checks one signature over a message written to it, so that a
// file read once can feed the verifiers of several signatures.
type Verifier interface {
	io.Writer
	// Verify reports whether the signature is valid over everything written.
	Verify() error
}

// NewVerifier returns a Verifier of sig by k. It fails at once if sig names
// another key id.
func (k PublicKey) NewVerifier(sig Signature) (Verifier, error) {
	if sig.KeyID != k.ID {
		return nil, fmt.Errorf("%w: signature key id %s, public key id %s", ErrKeyMismatch, sig.KeyID, k.ID)
	}
	if len(k.Key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key size %d", ErrMalformed, len(k.Key))
	}
	if !sig.Prehashed {
		return newLegacyVerifier(k, sig)
	}
	h, _ := blake2b.New512(nil)
	return &prehashVerifier{k: k, sig: sig, h: h}, nil
}

// Verify checks sig over the message read from r.
func (k PublicKey) Verify(sig Signature, r io.Reader) error {
	v, err := k.NewVerifier(sig)
	if err != nil {
		return err
	}
	if _, err := io.Copy(v, r); err != nil {
		return err
	}
	return v.Verify()
}

type prehashVerifier struct {
	k   PublicKey
	sig Signature
	h   hash.Hash
}

func (v *prehashVerifier) Write(p []byte) (int, error) { return v.h.Write(p) }

func (v *prehashVerifier) Verify() error {
	if !ed25519.Verify(v.k.Key, v.h.Sum(nil), v.sig.Sig[:]) {
		return ErrBadSignature
	}
	return verifyGlobal(v.k, v.sig)
}

func verifyGlobal(k PublicKey, sig Signature) error {
	msg := append(append([]byte(nil), sig.Sig[:]...), sig.TrustedComment...)
	if !ed25519.Verify(k.Key, msg, sig.GlobalSig[:]) {
		return fmt.Errorf("%w: the trusted comment's global signature is invalid", ErrBadSignature)
	}
	return nil
}

// PrivateKey is a minisign Ed25519 secret key.
type PrivateKey struct {
	ID  KeyID
	Key ed25519.PrivateKey
}

// GenerateKey makes a new key from rand.
func GenerateKey(rand io.Reader) (PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return PrivateKey{}, err
	}
	var k PrivateKey
	if _, err := io.ReadFull(rand, k.ID[:]); err != nil {
		return PrivateKey{}, err
	}
	k.Key = priv
	return k, nil
}

// Public returns the public half of k.
func (k PrivateKey) Public() PublicKey {
	return PublicKey{ID: k.ID, Key: k.Key.Public().(ed25519.PublicKey)}
}

// Sign makes a prehashed signature of the message read from r, with the
// given trusted and untrusted comments.
func (k PrivateKey) Sign(r io.Reader, trustedComment, untrustedComment string) (Signature, error) {
	h, _ := blake2b.New512(nil)
	if _, err := io.Copy(h, r); err != nil {
		return Signature{}, err
	}
	return k.SignDigest(h.Sum(nil), trustedComment, untrustedComment)
}

// SignDigest signs a BLAKE2b-512 digest computed by the caller (prehashed form).
func (k PrivateKey) SignDigest(digest []byte, trustedComment, untrustedComment string) (Signature, error) {
	if len(digest) != blake2b.Size {
		return Signature{}, fmt.Errorf("minisign: digest is %d bytes, want %d", len(digest), blake2b.Size)
	}
	return k.sign(digest, true, trustedComment, untrustedComment)
}

func (k PrivateKey) sign(msg []byte, prehashed bool, trustedComment, untrustedComment string) (Signature, error) {
	if len(k.Key) != ed25519.PrivateKeySize {
		return Signature{}, fmt.Errorf("minisign: private key size %d", len(k.Key))
	}
	if strings.ContainsAny(trustedComment+untrustedComment, "\n"+badCommentBytes) {
		return Signature{}, errors.New("minisign: comments must be one line without CR or NUL bytes")
	}
	if len(trustedComment) > MaxCommentSize || len(untrustedComment) > MaxCommentSize {
		return Signature{}, fmt.Errorf("minisign: comments longer than %d bytes", MaxCommentSize)
	}
	s := Signature{Prehashed: prehashed, KeyID: k.ID, TrustedComment: trustedComment, UntrustedComment: untrustedComment}
	copy(s.Sig[:], ed25519.Sign(k.Key, msg))
	copy(s.GlobalSig[:], ed25519.Sign(k.Key, append(s.Sig[:], trustedComment...)))
	return s, nil
}

// NewDigest returns the hash used by the prehashed form (BLAKE2b-512).
func NewDigest() hash.Hash {
	h, _ := blake2b.New512(nil)
	return h
}

// badCommentBytes are the bytes a comment may not hold besides LF: stock
// minisign does not read them as part of the comment.
const badCommentBytes = "\r\x00"

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\r\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	return lines
}
