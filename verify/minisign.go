package verify

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mirror-tool/mirror/internal/minisign"
)

type miniKey struct {
	key *trustedKey
	pub minisign.PublicKey
}

func (p *Policy) addMinisign(k *trustedKey, material []byte) error {
	pub, err := minisign.ParsePublicKey(bytes.TrimSpace(material))
	if err != nil {
		return fmt.Errorf("cannot read the minisign public key: %v", err)
	}
	for _, other := range p.mini[pub.ID] {
		if bytes.Equal(other.pub.Key, pub.Key) {
			return fmt.Errorf("minisign key %s is also in key %q; a key may appear once in the trust file", pub.ID, other.key.info.Name)
		}
	}
	if err := p.claimMaterial(k, keyMaterial(ed25519.PublicKey(pub.Key)), "minisign key "+pub.ID.String()); err != nil {
		return err
	}
	p.mini[pub.ID] = append(p.mini[pub.ID], &miniKey{key: k, pub: pub})
	k.info.IDs = append(k.info.IDs, pub.ID.String())
	return nil
}

func (p *Policy) parseMinisign(s Signature, f *feed) *check {
	sig, err := minisign.ParseSignature(s.Data)
	if err != nil {
		if errors.Is(err, minisign.ErrUnsupported) {
			return failed(s.Name, ErrUnsupported, "%v", err)
		}
		return failed(s.Name, ErrMalformed, "%v", err)
	}
	cands := p.mini[sig.KeyID]
	if len(cands) == 0 {
		return failed(s.Name, ErrUnknownKey, "made by minisign key %s, which is not in the trust file; add it with an allow list if the operator trusts it", sig.KeyID)
	}
	// Key ids are 64-bit and chosen by the key's owner: several trusted keys
	// may share one. Each candidate gets its own verifier; the first that
	// verifies counts.
	type cand struct {
		mk *miniKey
		v  minisign.Verifier
	}
	var vs []cand
	c := &check{sig: s.Name, key: cands[0].key, ref: miniRef(cands[0])}
	for _, mk := range cands {
		v, err := mk.pub.NewVerifier(sig)
		if err != nil {
			reason := ErrMalformed
			detail := err.Error()
			if errors.Is(err, minisign.ErrUnsupported) {
				reason = ErrUnsupported
			}
			c.reason, c.detail = reason, detail
			continue
		}
		f.add(v)
		vs = append(vs, cand{mk, v})
	}
	if len(vs) == 0 {
		return c
	}
	c.reason = nil
	c.finish = func() (error, string) {
		var detail string
		for _, x := range vs {
			c.key, c.ref = x.mk.key, miniRef(x.mk)
			err := x.v.Verify()
			if err == nil {
				// The trusted comment is authenticated now (its global
				// signature verified with the file's).
				signed, file := minisignComment(sig.TrustedComment)
				if s.File != "" && file != "" && file != s.File {
					return ErrWrongFile, fmt.Sprintf("its trusted comment says it was made for %q, but the file is served as %q: a validly signed file put in another's place, or a copy under another name (publish it under its signed name)", file, s.File)
				}
				c.signed = signed
				return nil, ""
			}
			detail = strings.TrimPrefix(err.Error(), minisign.ErrBadSignature.Error()+": ")
		}
		if detail == minisign.ErrBadSignature.Error() {
			detail = "the file or the signature was changed, or the signature is for another file"
		}
		return ErrBadSignature, detail
	}
	return c
}

func miniRef(mk *miniKey) KeyRef {
	return KeyRef{Name: mk.key.info.Name, Scheme: SchemeMinisign, ID: mk.pub.ID.String()}
}

// minisignComment reads what minisign's default trusted comment states,
// "timestamp:UNIX\tfile:NAME" (0.10 and later add "\thashed"): when the
// signature was made and the file's name. A comment the signer wrote
// itself (-t) may hold neither: zero values.
func minisignComment(c string) (signed time.Time, file string) {
	for _, f := range strings.Split(c, "\t") {
		k, v, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		switch k {
		case "timestamp":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 && n < 1<<40 {
				signed = time.Unix(n, 0).UTC()
			}
		case "file":
			file = v
		}
	}
	return signed, file
}
