package operator

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/eddsa"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ed25519OID is the OpenPGP curve OID of Ed25519 for EdDSA (RFC 4880bis,
// "EdDSALegacy" in RFC 9580): 1.3.6.1.4.1.11591.15.1.
var ed25519OID = []byte{0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01}

// openpgpHash is the digest of every OpenPGP signature the operator makes.
const openpgpHash = crypto.SHA512

// eddsaPublicPacket returns a v4 public-key packet (tag 6) for the Ed25519
// public key pub created at created, algorithm 22 (EdDSA), as GnuPG 2.2 and
// apt's gpgv read it.
func eddsaPublicPacket(pub ed25519.PublicKey, created time.Time) []byte {
	var body bytes.Buffer
	body.WriteByte(4)
	c := uint32(created.Unix())
	body.Write([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
	body.WriteByte(byte(packet.PubKeyAlgoEdDSA))
	body.WriteByte(byte(len(ed25519OID)))
	body.Write(ed25519OID)
	// MPI of the native point encoding 0x40 || pub: 263 bits.
	body.Write([]byte{0x01, 0x07, 0x40})
	body.Write(pub)
	out := []byte{0xC0 | 6, byte(body.Len())}
	return append(out, body.Bytes()...)
}

// newEntity builds the operator's OpenPGP entity from the Ed25519 key: a
// v4 EdDSA primary key created at created, one user id, and a positive
// self-certification (made at created) that allows signing and certifying.
// The same key and created always give the same public key and fingerprint.
func newEntity(priv ed25519.PrivateKey, created time.Time, name, comment string) (*openpgp.Entity, error) {
	created = created.UTC().Truncate(time.Second)
	if created.Unix() <= 0 || created.Unix() > 0xFFFFFFFF {
		return nil, fmt.Errorf("openpgp key creation time %s out of range", created)
	}
	p, err := packet.Read(bytes.NewReader(eddsaPublicPacket(priv.Public().(ed25519.PublicKey), created)))
	if err != nil {
		return nil, fmt.Errorf("build openpgp public key: %w", err)
	}
	pub, ok := p.(*packet.PublicKey)
	if !ok {
		return nil, errors.New("build openpgp public key: unexpected packet")
	}
	epub, ok := pub.PublicKey.(*eddsa.PublicKey)
	if !ok {
		return nil, errors.New("build openpgp public key: not an EdDSA key")
	}
	epriv := eddsa.NewPrivateKey(*epub)
	epriv.D = bytes.Clone(priv.Seed())
	if err := eddsa.Validate(epriv); err != nil {
		return nil, fmt.Errorf("build openpgp private key: %w", err)
	}
	sk := packet.NewEdDSAPrivateKey(created, epriv)
	e := &openpgp.Entity{
		PrimaryKey: &sk.PublicKey,
		PrivateKey: sk,
		Identities: map[string]*openpgp.Identity{},
	}
	deterministic := false
	cfg := &packet.Config{
		DefaultHash: openpgpHash,
		Time:        func() time.Time { return created },
		// No random salt notation: the same key and creation time give
		// the same operator.asc, byte for byte.
		NonDeterministicSignaturesViaNotation: &deterministic,
	}
	if err := e.AddUserId(name, comment, "", cfg); err != nil {
		return nil, fmt.Errorf("build openpgp user id: %w", err)
	}
	return e, nil
}

func armoredPublic(e *openpgp.Entity) ([]byte, error) {
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, map[string]string{
		"Comment": "mirror operator key " + fmt.Sprintf("%X", e.PrimaryKey.Fingerprint),
	})
	if err != nil {
		return nil, err
	}
	if err := e.Serialize(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// readArmoredPublic parses operator.asc: exactly one v4 EdDSA Ed25519
// primary key. It returns that key's point and creation time.
func readArmoredPublic(data []byte) (ed25519.PublicKey, time.Time, error) {
	if len(data) > MaxArmoredSize {
		return nil, time.Time{}, fmt.Errorf("%w: larger than %d bytes", ErrMalformedPublic, MaxArmoredSize)
	}
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrMalformedPublic, err)
	}
	if len(el) != 1 {
		return nil, time.Time{}, fmt.Errorf("%w: %d keys, want 1", ErrMalformedPublic, len(el))
	}
	pk := el[0].PrimaryKey
	if pk.Version != 4 || pk.PubKeyAlgo != packet.PubKeyAlgoEdDSA {
		return nil, time.Time{}, fmt.Errorf("%w: not a v4 EdDSA key", ErrMalformedPublic)
	}
	epub, ok := pk.PublicKey.(*eddsa.PublicKey)
	if !ok || len(epub.X) != ed25519.PublicKeySize {
		return nil, time.Time{}, fmt.Errorf("%w: not an Ed25519 key", ErrMalformedPublic)
	}
	return ed25519.PublicKey(bytes.Clone(epub.X)), pk.CreationTime, nil
}
