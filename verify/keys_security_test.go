package verify

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzTrustKeyMaterial fuzzes the key parsers behind the trust file (issue
// 7: OpenPGP, SSH and minisign public keys, inline or in a key file whose
// scheme is sniffed). Seeds are the real keys made by gpg, ssh-keygen and
// minisign in fixtures/verify. The first byte picks how the material is
// given. Properties: no panic; nothing is returned on error; an accepted
// key has its scheme, at least one id, and the allow list it was given.
func FuzzTrustKeyMaterial(f *testing.F) {
	n := 0
	for i, g := range []string{"openpgp/*.asc", "openpgp/*.gpg", "ssh/*.pub", "minisign/*.pub"} {
		names, err := filepath.Glob(filepath.Join(fixtures, g))
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(byte(i), b)
			f.Add(byte(4), b) // as a key file
			n++
		}
	}
	if n == 0 {
		f.Fatal("no key fixtures for seeds")
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, how byte, material []byte) {
		k := KeyConfig{Name: "k", Allow: []string{"tools:*"}}
		switch how % 5 {
		case 0, 1:
			k.OpenPGP = string(material)
		case 2:
			k.SSH = string(material)
		case 3:
			k.Minisign = string(material)
		case 4:
			kf := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(kf, material, 0o600); err != nil {
				t.Fatal(err)
			}
			k.File = kf
		}
		p, err := NewPolicy(Config{Keys: []KeyConfig{k}}, dir)
		if err != nil {
			if p != nil {
				t.Fatal("policy returned with an error")
			}
			return
		}
		keys := p.Keys()
		if len(keys) != 1 || keys[0].Scheme == "" || len(keys[0].IDs) == 0 || len(keys[0].Allow) != 1 || keys[0].Allow[0] != "tools:*" {
			t.Fatalf("accepted key %+v", keys)
		}
	})
}
