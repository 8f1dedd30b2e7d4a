package minisign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

// The size of the files in the benchmarks of docs/BENCHMARKS.md.
const benchSize = 8 << 10

func benchKey(b *testing.B) (PrivateKey, []byte) {
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, benchSize)
	rand.Read(msg)
	return k, msg
}

func BenchmarkSign(b *testing.B) {
	k, msg := benchKey(b)
	b.Run("prehashed", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := k.Sign(bytes.NewReader(msg), "trusted", "untrusted"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("legacy", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := k.SignLegacy(msg, "trusted", "untrusted"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	k, msg := benchKey(b)
	pre, _ := k.Sign(bytes.NewReader(msg), "trusted", "untrusted")
	leg, _ := k.SignLegacy(msg, "trusted", "untrusted")
	pub := k.Public()
	for _, c := range []struct {
		name string
		sig  Signature
	}{{"prehashed", pre}, {"legacy", leg}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				if err := pub.Verify(c.sig, bytes.NewReader(msg)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The comparison for the streaming legacy verifier: crypto/ed25519 with
	// the whole message in memory, plus the global signature as above.
	b.Run("legacy-stdlib-in-memory", func(b *testing.B) {
		b.SetBytes(benchSize)
		global := append(leg.Sig[:], leg.TrustedComment...)
		for b.Loop() {
			if !ed25519.Verify(pub.Key, msg, leg.Sig[:]) || !ed25519.Verify(pub.Key, global, leg.GlobalSig[:]) {
				b.Fatal("does not verify")
			}
		}
	})
}
