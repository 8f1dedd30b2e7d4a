package verify

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/ssh"
)

// SSH signatures (SSHSIG, made by `ssh-keygen -Y sign`), as specified in
// OpenSSH's PROTOCOL.sshsig:
//
//	-----BEGIN SSH SIGNATURE-----
//	base64(blob)
//	-----END SSH SIGNATURE-----
//
//	blob = "SSHSIG" uint32(1) string(publickey) string(namespace)
//	       string(reserved) string(hash_algorithm) string(signature)
//	signed data = "SSHSIG" string(namespace) string(reserved)
//	       string(hash_algorithm) string(H(message))
const (
	sshBegin = "-----BEGIN SSH SIGNATURE-----"
	sshEnd   = "-----END SSH SIGNATURE-----"
	sshMagic = "SSHSIG"

	maxSSHKey       = 16 << 10
	maxSSHNamespace = 256
	maxSSHField     = 16 << 10
)

type sshKey struct {
	key *trustedKey
	pub ssh.PublicKey
}

// sshSig is a parsed SSHSIG blob.
type sshSig struct {
	PublicKey []byte
	Namespace string
	Reserved  []byte
	HashAlg   string
	Format    string // signature algorithm, e.g. "ssh-ed25519", "rsa-sha2-512"
	Blob      []byte
}

// sshKeyAllowed accepts Ed25519, ECDSA P-256/384/521 and RSA of 2048 bits
// or more (certificates and security-key types are refused).
func sshKeyAllowed(pub ssh.PublicKey) error {
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return nil
	case ssh.KeyAlgoRSA:
		cp, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return fmt.Errorf("%w: RSA key without parameters", ErrUnsupported)
		}
		rk, ok := cp.CryptoPublicKey().(*rsa.PublicKey)
		if !ok || rk.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key smaller than 2048 bits", ErrUnsupported)
		}
		return nil
	}
	return fmt.Errorf("%w: SSH key type %s", ErrUnsupported, pub.Type())
}

func (p *Policy) addSSH(k *trustedKey, material []byte) error {
	pub, _, _, rest, err := ssh.ParseAuthorizedKey(material)
	if err != nil {
		return fmt.Errorf("cannot read the SSH public key: %v", err)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return errors.New("holds more than one SSH public key; give each key its own entry")
	}
	if err := sshKeyAllowed(pub); err != nil {
		return err
	}
	w := string(pub.Marshal())
	if other, ok := p.ssh[w]; ok {
		return fmt.Errorf("SSH key %s is also in key %q; a key may appear once in the trust file", ssh.FingerprintSHA256(pub), other.key.info.Name)
	}
	if cp, ok := pub.(ssh.CryptoPublicKey); ok {
		if err := p.claimMaterial(k, keyMaterial(cp.CryptoPublicKey()), "SSH key "+ssh.FingerprintSHA256(pub)); err != nil {
			return err
		}
	}
	p.ssh[w] = &sshKey{key: k, pub: pub}
	k.info.IDs = append(k.info.IDs, ssh.FingerprintSHA256(pub))
	return nil
}

// parseSSHSig decodes an armored SSHSIG signature, with bounds.
func parseSSHSig(data []byte) (*sshSig, error) {
	t := bytes.TrimSpace(data)
	body, ok := bytes.CutPrefix(t, []byte(sshBegin))
	if !ok {
		return nil, fmt.Errorf("%w: no %q line", ErrMalformed, sshBegin)
	}
	body, ok = bytes.CutSuffix(body, []byte(sshEnd))
	if !ok {
		return nil, fmt.Errorf("%w: no %q line at the end", ErrMalformed, sshEnd)
	}
	b64 := make([]byte, 0, len(body))
	for _, c := range body {
		switch c {
		case '\n', '\r':
		default:
			b64 = append(b64, c)
		}
	}
	blob, err := base64.StdEncoding.Strict().DecodeString(string(b64))
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrMalformed, err)
	}
	r := sshReader{b: blob}
	magic := r.bytes(len(sshMagic))
	version := r.uint32()
	s := &sshSig{}
	s.PublicKey = r.string(maxSSHKey)
	s.Namespace = string(r.string(maxSSHNamespace))
	s.Reserved = r.string(maxSSHField)
	s.HashAlg = string(r.string(64))
	sig := r.string(maxSSHField)
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: SSHSIG blob is truncated or has trailing bytes", ErrMalformed)
	}
	if string(magic) != sshMagic {
		return nil, fmt.Errorf("%w: SSHSIG magic missing", ErrMalformed)
	}
	if version != 1 {
		return nil, fmt.Errorf("%w: SSHSIG version %d", ErrUnsupported, version)
	}
	sr := sshReader{b: sig}
	s.Format = string(sr.string(64))
	s.Blob = sr.string(maxSSHField)
	if sr.err != nil {
		return nil, fmt.Errorf("%w: SSHSIG signature field is truncated", ErrMalformed)
	}
	if len(sr.b) != 0 {
		return nil, fmt.Errorf("%w: SSHSIG signature %s has extra fields (security-key signatures are not supported)", ErrUnsupported, s.Format)
	}
	if s.Namespace == "" {
		return nil, fmt.Errorf("%w: empty SSHSIG namespace", ErrMalformed)
	}
	return s, nil
}

// marshal encodes s as an armored signature (for tests and fuzzing).
func (s *sshSig) marshal() []byte {
	var blob []byte
	blob = append(blob, sshMagic...)
	blob = binary.BigEndian.AppendUint32(blob, 1)
	blob = appendString(blob, s.PublicKey)
	blob = appendString(blob, []byte(s.Namespace))
	blob = appendString(blob, s.Reserved)
	blob = appendString(blob, []byte(s.HashAlg))
	blob = appendString(blob, appendString(appendString(nil, []byte(s.Format)), s.Blob))
	var b bytes.Buffer
	b.WriteString(sshBegin + "\n")
	enc := base64.StdEncoding.EncodeToString(blob)
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n" + sshEnd + "\n")
	return b.Bytes()
}

// signedData is what the SSH key signed for digest of the message.
func (s *sshSig) signedData(digest []byte) []byte {
	d := []byte(sshMagic)
	d = appendString(d, []byte(s.Namespace))
	d = appendString(d, s.Reserved)
	d = appendString(d, []byte(s.HashAlg))
	return appendString(d, digest)
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

type sshReader struct {
	b   []byte
	err error
}

func (r *sshReader) bytes(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *sshReader) uint32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *sshReader) string(limit int) []byte {
	n := r.uint32()
	if r.err == nil && n > uint32(limit) {
		r.err = errors.New("field too long")
		return nil
	}
	return r.bytes(int(n))
}

func (p *Policy) parseSSH(s Signature, f *feed) *check {
	sig, err := parseSSHSig(s.Data)
	if err != nil {
		reason := ErrMalformed
		if errors.Is(err, ErrUnsupported) {
			reason = ErrUnsupported
		}
		return failed(s.Name, reason, "%s", trimReason(err, reason))
	}
	sk, ok := p.ssh[string(sig.PublicKey)]
	if !ok {
		id := "(unparsable key)"
		if pub, err := ssh.ParsePublicKey(sig.PublicKey); err == nil {
			id = pub.Type() + " " + ssh.FingerprintSHA256(pub)
		}
		return failed(s.Name, ErrUnknownKey, "made by SSH key %s, which is not in the trust file; add it with an allow list if the operator trusts it", id)
	}
	c := &check{sig: s.Name, key: sk.key, ref: KeyRef{Name: sk.key.info.Name, Scheme: SchemeSSH, ID: ssh.FingerprintSHA256(sk.pub)}}
	if sig.Namespace != sk.key.info.Namespace {
		c.reason, c.detail = ErrBadSignature, fmt.Sprintf("made for namespace %q, the trust file expects %q (namespace = ...)", sig.Namespace, sk.key.info.Namespace)
		return c
	}
	switch {
	case sig.Format == ssh.KeyAlgoRSA:
		c.reason, c.detail = ErrUnsupported, "ssh-rsa signatures use SHA-1; sign with rsa-sha2-256 or rsa-sha2-512"
		return c
	case sk.pub.Type() == ssh.KeyAlgoRSA && sig.Format != ssh.KeyAlgoRSASHA256 && sig.Format != ssh.KeyAlgoRSASHA512,
		sk.pub.Type() != ssh.KeyAlgoRSA && sig.Format != sk.pub.Type():
		c.reason, c.detail = ErrUnsupported, fmt.Sprintf("signature algorithm %q for a %s key", sig.Format, sk.pub.Type())
		return c
	}
	var mk func() hash.Hash
	switch sig.HashAlg {
	case "sha256":
		mk = sha256.New
	case "sha512":
		mk = sha512.New
	default:
		c.reason, c.detail = ErrUnsupported, fmt.Sprintf("SSHSIG hash %q (only sha256 and sha512)", sig.HashAlg)
		return c
	}
	h := f.hash("ssh/"+sig.HashAlg, func() (io.Writer, hash.Hash) { h := mk(); return h, h })
	c.finish = func() (error, string) {
		clone, err := sum(h)
		if err != nil {
			return ErrUnsupported, err.Error()
		}
		if err := sk.pub.Verify(sig.signedData(clone.Sum(nil)), &ssh.Signature{Format: sig.Format, Blob: sig.Blob}); err != nil {
			return ErrBadSignature, "the file or the signature was changed, or the signature is for another file"
		}
		return nil, ""
	}
	return c
}
