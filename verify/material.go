package verify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"strconv"

	pgpecdsa "github.com/ProtonMail/go-crypto/openpgp/ecdsa"
	pgped25519 "github.com/ProtonMail/go-crypto/openpgp/ed25519"
	"github.com/ProtonMail/go-crypto/openpgp/eddsa"
)

// keyMaterial is a canonical form of a public key's material: the same for
// one key whatever carries it (a minisign public key, an SSH key, an
// OpenPGP primary key or subkey, with any creation time), "" for a kind it
// does not know. A threshold counts trust-file entries, so one private key
// must not stand behind two of them (the operator's own operator.pub and
// operator.asc are one Ed25519 key).
func keyMaterial(pub any) string {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return "ed:" + string(k)
	case *pgped25519.PublicKey:
		return "ed:" + string(k.Point)
	case *eddsa.PublicKey:
		return "ed:" + string(k.X)
	case *rsa.PublicKey:
		return "rsa:" + k.N.Text(16) + ":" + strconv.Itoa(k.E)
	case *ecdsa.PublicKey:
		return "ec:" + k.X.Text(16) + ":" + k.Y.Text(16)
	case *pgpecdsa.PublicKey:
		return "ec:" + k.X.Text(16) + ":" + k.Y.Text(16)
	}
	return ""
}

// claimMaterial records that entry k holds key material m (what names it,
// for the error), or says which other entry holds it already.
func (p *Policy) claimMaterial(k *trustedKey, m, what string) error {
	if m == "" {
		return nil
	}
	if other, ok := p.material[m]; ok && other != k.info.Name {
		return fmt.Errorf("%s is the same key as one in key %q (in another form); a key may appear once in the trust file, or a threshold would count it twice", what, other)
	}
	p.material[m] = k.info.Name
	return nil
}
