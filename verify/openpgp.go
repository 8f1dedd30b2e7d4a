package verify

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// pgpRing indexes every OpenPGP primary key and subkey of the trust file.
type pgpRing struct {
	byID  map[uint64][]pgpCand
	owner map[string]string // fingerprint -> key name, to refuse duplicates
}

type pgpCand struct {
	key    *trustedKey
	entity *openpgp.Entity
	pub    *packet.PublicKey
	sub    *openpgp.Subkey // nil when the primary key signs
}

func newPGPRing() *pgpRing {
	return &pgpRing{byID: map[uint64][]pgpCand{}, owner: map[string]string{}}
}

func fpr(pk *packet.PublicKey) string { return strings.ToUpper(hex.EncodeToString(pk.Fingerprint)) }

// readKeyring reads OpenPGP public keys, armored (one or more blocks) or
// binary.
func readKeyring(b []byte) (openpgp.EntityList, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN PGP")) {
		return openpgp.ReadKeyRing(bytes.NewReader(b))
	}
	var all openpgp.EntityList
	// One buffered reader for every block: armor.Decode buffers what it
	// is given unless it is a bufio.Reader already, and a fresh buffer per
	// block swallowed the start of the next one (its key was dropped
	// without a word).
	r := bufio.NewReader(bytes.NewReader(b))
	for {
		block, err := armor.Decode(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("armor: %v", err)
		}
		if block.Type != openpgp.PublicKeyType {
			if block.Type == openpgp.PrivateKeyType {
				return nil, errors.New("holds a secret key; put only the public key (gpg --armor --export) in the trust file")
			}
			return nil, fmt.Errorf("armor block %q is not a public key block", block.Type)
		}
		el, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(io.Discard, block.Body); err != nil {
			return nil, fmt.Errorf("armor: %v", err)
		}
		all = append(all, el...)
	}
	return all, nil
}

func (p *Policy) addOpenPGP(k *trustedKey, material []byte) error {
	el, err := readKeyring(material)
	if err != nil {
		return fmt.Errorf("cannot read the OpenPGP key: %v", err)
	}
	if len(el) == 0 {
		return errors.New("no OpenPGP public key found")
	}
	add := func(c pgpCand) error {
		f := fpr(c.pub)
		if other, ok := p.pgp.owner[f]; ok {
			return fmt.Errorf("OpenPGP key %s is also in key %q; a key may appear once in the trust file", f, other)
		}
		if err := p.claimMaterial(k, keyMaterial(c.pub.PublicKey), "OpenPGP key "+f); err != nil {
			return err
		}
		p.pgp.owner[f] = k.info.Name
		p.pgp.byID[c.pub.KeyId] = append(p.pgp.byID[c.pub.KeyId], c)
		return nil
	}
	for _, e := range el {
		if e.PrivateKey != nil {
			return errors.New("holds a secret key; put only the public key (gpg --export) in the trust file")
		}
		if err := add(pgpCand{key: k, entity: e, pub: e.PrimaryKey}); err != nil {
			return err
		}
		k.info.IDs = append(k.info.IDs, fpr(e.PrimaryKey))
		for i := range e.Subkeys {
			sk := &e.Subkeys[i]
			if err := add(pgpCand{key: k, entity: e, pub: sk.PublicKey, sub: sk}); err != nil {
				return err
			}
			k.info.IDs = append(k.info.IDs, "sub:"+fpr(sk.PublicKey))
		}
	}
	return nil
}

// readPGPSignatures returns the signature packets of a detached signature,
// armored or binary.
func readPGPSignatures(data []byte) ([]*packet.Signature, error) {
	body := io.Reader(bytes.NewReader(data))
	if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN PGP")) {
		block, err := armor.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: armor: %v", ErrMalformed, err)
		}
		if block.Type != openpgp.SignatureType {
			return nil, fmt.Errorf("%w: armor block %q is not a signature", ErrMalformed, block.Type)
		}
		raw, err := io.ReadAll(io.LimitReader(block.Body, MaxSignatureSize+1))
		if err != nil {
			return nil, fmt.Errorf("%w: armor: %v", ErrMalformed, err)
		}
		body = bytes.NewReader(raw)
	}
	var sigs []*packet.Signature
	for {
		// packet.Read, not packet.Reader: the Reader silently skips packets
		// it does not support, which would turn an MD5 signature into "no
		// signature" instead of "unsupported digest".
		pkt, err := packet.Read(body)
		if err == io.EOF {
			break
		}
		if err != nil {
			var ue pgperrors.UnsupportedError
			if errors.As(err, &ue) {
				return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
			}
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if _, ok := pkt.(*packet.Marker); ok {
			continue
		}
		sig, ok := pkt.(*packet.Signature)
		if !ok {
			return nil, fmt.Errorf("%w: a %T packet in a detached signature", ErrMalformed, pkt)
		}
		if len(sigs) == MaxSignaturesPerFile {
			return nil, fmt.Errorf("%w: more than %d signatures in one file", ErrMalformed, MaxSignaturesPerFile)
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%w: no OpenPGP signature packet", ErrMalformed)
	}
	return sigs, nil
}

func weakHash(h crypto.Hash) bool {
	return h == crypto.MD5 || h == crypto.SHA1 || h == crypto.RIPEMD160 || h == crypto.MD5SHA1
}

func (p *Policy) parseOpenPGP(name string, data []byte, f *feed, now time.Time) []*check {
	sigs, err := readPGPSignatures(data)
	if err != nil {
		reason := ErrMalformed
		if errors.Is(err, ErrUnsupported) {
			reason = ErrUnsupported
		}
		return []*check{failed(name, reason, "%s", trimReason(err, reason))}
	}
	checks := make([]*check, 0, len(sigs))
	for _, sig := range sigs {
		checks = append(checks, p.pgpCheck(name, sig, f, now))
	}
	return checks
}

func (p *Policy) pgpCheck(name string, sig *packet.Signature, f *feed, now time.Time) *check {
	if sig.SigType != packet.SigTypeBinary && sig.SigType != packet.SigTypeText {
		return failed(name, ErrMalformed, "OpenPGP signature type %#x is not a document signature", sig.SigType)
	}
	var cands []pgpCand
	issuer := ""
	switch {
	case len(sig.IssuerFingerprint) > 0:
		issuer = strings.ToUpper(hex.EncodeToString(sig.IssuerFingerprint))
		for _, cs := range p.pgp.byID {
			for _, c := range cs {
				if bytes.Equal(c.pub.Fingerprint, sig.IssuerFingerprint) {
					cands = append(cands, c)
				}
			}
		}
	case sig.IssuerKeyId != nil:
		issuer = fmt.Sprintf("%016X", *sig.IssuerKeyId)
		cands = p.pgp.byID[*sig.IssuerKeyId]
	default:
		return failed(name, ErrMalformed, "the OpenPGP signature names no issuer key")
	}
	if len(cands) == 0 {
		return failed(name, ErrUnknownKey, "made by OpenPGP key %s, which is not in the trust file; add it with an allow list if the operator trusts it", issuer)
	}
	c := &check{sig: name, key: cands[0].key, ref: pgpRef(cands[0])}
	if weakHash(sig.Hash) {
		c.reason, c.detail = ErrUnsupported, fmt.Sprintf("digest %v is too weak; ask upstream for a SHA-256 or stronger signature", sig.Hash)
		return c
	}
	if !sig.Hash.Available() || sig.Hash.Size() < 28 {
		c.reason, c.detail = ErrUnsupported, fmt.Sprintf("digest %v is not supported", sig.Hash)
		return c
	}
	for _, n := range sig.Notations {
		if n.IsCritical {
			c.reason, c.detail = ErrUnsupported, fmt.Sprintf("critical notation %q is not understood", n.Name)
			return c
		}
	}
	text := sig.SigType == packet.SigTypeText
	salt := sig.Salt()
	hid := fmt.Sprintf("openpgp/%d/%x/%v", sig.Hash, salt, text)
	h := f.hash(hid, func() (io.Writer, hash.Hash) {
		h := sig.Hash.New()
		h.Write(salt)
		if text {
			return &canonicalText{w: h}, h
		}
		return h, h
	})
	c.finish = func() (error, string) {
		var reason error
		var detail string
		for _, cand := range cands {
			c.key, c.ref = cand.key, pgpRef(cand)
			if reason, detail = pgpAlgorithm(cand.pub); reason != nil {
				continue
			}
			clone, err := sum(h)
			if err != nil {
				return ErrUnsupported, err.Error()
			}
			// VerifySignature may add v5 metadata to the signature; work on a copy.
			s := *sig
			if err := cand.pub.VerifySignature(clone, &s); err != nil {
				reason, detail = ErrBadSignature, "the file or the signature was changed, or the signature is for another file"
				continue
			}
			reason, detail = pgpValidity(cand, sig, now)
			if reason == nil {
				c.signed = sig.CreationTime
			}
			return reason, detail
		}
		return reason, detail
	}
	return c
}

func pgpRef(c pgpCand) KeyRef {
	r := KeyRef{Name: c.key.info.Name, Scheme: SchemeOpenPGP, ID: fpr(c.entity.PrimaryKey)}
	if c.sub != nil {
		r.Subkey = fpr(c.pub)
	}
	return r
}

// pgpAlgorithm accepts RSA of 2048 bits or more, ECDSA on P-256/384/521 and
// Ed25519 (EdDSA legacy or v6).
func pgpAlgorithm(pk *packet.PublicKey) (error, string) {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		bits, err := pk.BitLength()
		if err != nil || bits < 2048 {
			return ErrUnsupported, fmt.Sprintf("RSA key of %d bits; at least 2048 are required", bits)
		}
		return nil, ""
	case packet.PubKeyAlgoECDSA:
		curve, err := pk.Curve()
		if err == nil && (curve == packet.CurveNistP256 || curve == packet.CurveNistP384 || curve == packet.CurveNistP521) {
			return nil, ""
		}
		return ErrUnsupported, fmt.Sprintf("ECDSA curve %s is not supported", curve)
	case packet.PubKeyAlgoEdDSA:
		curve, err := pk.Curve()
		if err == nil && curve == packet.Curve25519 {
			return nil, ""
		}
		return ErrUnsupported, fmt.Sprintf("EdDSA curve %s is not supported", curve)
	case packet.PubKeyAlgoEd25519:
		return nil, ""
	}
	return ErrUnsupported, fmt.Sprintf("public-key algorithm %d is not supported", pk.PubKeyAlgo)
}

// pgpValidity checks, after the signature verified, the key's revocations,
// expiry and creation against now and against the signature's creation time.
func pgpValidity(c pgpCand, sig *packet.Signature, now time.Time) (error, string) {
	e := c.entity
	self, _ := e.PrimarySelfSignature()
	if self == nil {
		return ErrMalformed, "the OpenPGP key has no valid self-signature"
	}
	if e.Revoked(now) {
		return ErrKeyRevoked, "the OpenPGP key carries a revocation; remove it from the trust file and get the package signed by a current key"
	}
	if c.sub != nil && c.sub.Revoked(now) {
		return ErrKeyRevoked, fmt.Sprintf("signing subkey %s is revoked; get the package signed by a current key", fpr(c.pub))
	}
	at := sig.CreationTime
	if at.After(now) {
		return ErrSignatureExpired, fmt.Sprintf("the signature is dated %s, after now (%s); check the clocks", at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if sig.SigExpired(now) {
		return ErrSignatureExpired, "the signature's own lifetime has passed"
	}
	if self.SigExpired(now) {
		return ErrKeyExpired, "the key's self-signature has expired; import a refreshed key"
	}
	type level struct {
		what    string
		pub     *packet.PublicKey
		binding *packet.Signature
	}
	levels := []level{{"key", e.PrimaryKey, self}}
	if c.sub != nil {
		levels = append(levels, level{"subkey " + fpr(c.pub), c.pub, c.sub.Sig})
	}
	for _, l := range levels {
		created := l.pub.CreationTime
		switch {
		case created.After(now):
			return ErrKeyNotYetValid, fmt.Sprintf("the %s was created %s, after now", l.what, created.UTC().Format(time.RFC3339))
		case l.pub.KeyExpired(l.binding, now):
			return ErrKeyExpired, fmt.Sprintf("the %s expired %s; get the package signed by a current key, or import the key with extended expiry", l.what, expiry(l.pub, l.binding))
		case at.Before(created):
			return ErrKeyNotYetValid, fmt.Sprintf("the signature (%s) is older than the %s (created %s)", at.UTC().Format(time.RFC3339), l.what, created.UTC().Format(time.RFC3339))
		case l.pub.KeyExpired(l.binding, at):
			return ErrKeyExpired, fmt.Sprintf("the signature (%s) was made after the %s expired (%s)", at.UTC().Format(time.RFC3339), l.what, expiry(l.pub, l.binding))
		}
	}
	signer := self
	if c.sub != nil {
		signer = c.sub.Sig
	}
	if signer.FlagsValid && !signer.FlagSign {
		return ErrUnsupported, "the key that made the signature is not marked for signing (key flags)"
	}
	return nil, ""
}

func expiry(pk *packet.PublicKey, sig *packet.Signature) string {
	if sig.KeyLifetimeSecs == nil {
		return "never"
	}
	return pk.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second).UTC().Format(time.RFC3339)
}

// canonicalText writes text with every LF not preceded by CR turned into
// CR LF (RFC 9580 5.2.1, text signatures) to w, with the same state machine
// as go-crypto's NewCanonicalTextHash: the byte after a CR is passed as is.
type canonicalText struct {
	w     io.Writer
	state int // 1 right after a CR
}

func (c *canonicalText) Write(p []byte) (int, error) {
	start := 0
	for i, b := range p {
		if c.state == 1 {
			c.state = 0
			continue
		}
		switch b {
		case '\r':
			c.state = 1
		case '\n':
			if _, err := c.w.Write(p[start:i]); err != nil {
				return 0, err
			}
			if _, err := c.w.Write([]byte("\r\n")); err != nil {
				return 0, err
			}
			start = i + 1
		}
	}
	if _, err := c.w.Write(p[start:]); err != nil {
		return 0, err
	}
	return len(p), nil
}
