package minisign

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// addSeeds adds every testdata file matching the patterns to the corpus
// and fails if there are none: a fuzz target with no seeds tests little.
func addSeeds(f *testing.F, patterns ...string) {
	f.Helper()
	n := 0
	for _, p := range patterns {
		for _, path := range testdataGlob(f, p) {
			f.Add(readTestdata(f, path[len("testdata/"):]))
			n++
		}
	}
	if n == 0 {
		f.Fatal("empty seed corpus")
	}
}

func FuzzParsePublicKey(f *testing.F) {
	addSeeds(f, "*.pub")
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePublicKey(data)
		if err != nil {
			if k.Key != nil || k.ID != (KeyID{}) {
				t.Fatalf("key returned with error %v", err)
			}
			return
		}
		for _, form := range [][]byte{k.File(), []byte(k.String())} {
			back, err := ParsePublicKey(form)
			if err != nil {
				t.Fatalf("re-parse %q: %v", form, err)
			}
			if back.ID != k.ID || !bytes.Equal(back.Key, k.Key) {
				t.Fatalf("round trip changed the key")
			}
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	addSeeds(f, "*.minisig")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSignature(data)
		if err != nil {
			if s != (Signature{}) {
				t.Fatalf("signature returned with error %v", err)
			}
			return
		}
		back, err := ParseSignature(s.Marshal())
		if err != nil {
			t.Fatalf("re-parse: %v\n%q", err, s.Marshal())
		}
		if back != s {
			t.Fatalf("round trip changed the signature:\n%+v\n%+v", s, back)
		}
	})
}

// fuzzKDFLimit bounds the scrypt work a fuzzed key may ask for, so that one
// input cannot take a second; the parser's own limits are tested elsewhere.
const fuzzKDFLimit = 1 << 20

func FuzzParsePrivateKey(f *testing.F) {
	addSeeds(f, "*.key")
	// A seed encrypted with small limits, so that the fuzzer reaches the
	// decryption and the checksum with a right passphrase.
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	enc, err := k.MarshalPrivate([]byte("fuzz"), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		pk, err := parsePrivateKey(data, []byte("fuzz"), fuzzKDFLimit, fuzzKDFLimit)
		if err != nil {
			if pk.Key != nil || pk.ID != (KeyID{}) {
				t.Fatalf("key returned with error %v", err)
			}
			return
		}
		for _, pass := range [][]byte{nil, []byte("other")} {
			out, err := pk.MarshalPrivate(pass, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParsePrivateKey(out, pass)
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			if back.ID != pk.ID || !bytes.Equal(back.Key, pk.Key) {
				t.Fatal("round trip changed the key")
			}
		}
	})
}
