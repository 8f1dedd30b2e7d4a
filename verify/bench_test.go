package verify

import (
	"bytes"
	"context"
	"testing"
)

// benchVerify measures Check (parse the signature, hash the 8 KiB file,
// verify, decide) for one signature over fixtures/verify/bench-8k.bin, the
// work the stock tools do once per file in scripts/bench/verify-tools.sh.
func benchVerify(b *testing.B, sig string) {
	p := loadFixturePolicy(b)
	file := readFixture(b, "bench-8k.bin")
	s := sigs(b, sig)
	ctx := context.Background()
	v, err := p.Check(ctx, "tools:bench", bytes.NewReader(file), s, now)
	if err != nil || !v.Accepted {
		b.Fatalf("fixture does not verify: %v\n%s", err, v)
	}
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		v, err := p.Check(ctx, "tools:bench", bytes.NewReader(file), s, now)
		if err != nil || !v.Accepted {
			b.Fatal("rejected")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

func BenchmarkVerifyOpenPGPEd25519(b *testing.B) { benchVerify(b, "openpgp/ed25519.bench-8k.bin.sig") }
func BenchmarkVerifyOpenPGPRSA2048(b *testing.B) { benchVerify(b, "openpgp/rsa2048.bench-8k.bin.sig") }
func BenchmarkVerifyOpenPGPRSA4096(b *testing.B) { benchVerify(b, "openpgp/rsa4096.bench-8k.bin.sig") }
func BenchmarkVerifyOpenPGPP256(b *testing.B)    { benchVerify(b, "openpgp/p256.bench-8k.bin.sig") }
func BenchmarkVerifyMinisign(b *testing.B)       { benchVerify(b, "minisign/mini1.bench-8k.bin.minisig") }
func BenchmarkVerifySSHEd25519(b *testing.B)     { benchVerify(b, "ssh/ed25519.bench-8k.bin.sig") }
func BenchmarkVerifySSHECDSA256(b *testing.B)    { benchVerify(b, "ssh/ecdsa256.bench-8k.bin.sig") }
func BenchmarkVerifySSHRSA(b *testing.B)         { benchVerify(b, "ssh/rsa.bench-8k.bin.sig") }
