//go:build slow

package minisign

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// These tests run scrypt at minisign's real limits (N = 2^20, r = 8: 1 GiB
// and about 20 to 80 seconds each under -race), so they are behind the slow
// tag (scripts/test --slow, which .ci/run uses).

// TestParseStockEncryptedKey decrypts a key made by `minisign -G` with a
// password, at minisign's real scrypt limits (1 GiB).
func TestParseStockEncryptedKey(t *testing.T) {
	t.Parallel()
	data := readTestdata(t, "enc.key")
	pub, err := ParsePublicKey(readTestdata(t, "enc.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if enc, err := PrivateKeyEncrypted(data); err != nil || !enc {
		t.Fatalf("PrivateKeyEncrypted = %v, %v; want true", enc, err)
	}
	if _, err := ParsePrivateKey(data, nil); !errors.Is(err, ErrPassphrase) {
		t.Errorf("no passphrase: %v, want ErrPassphrase", err)
	}
	k, err := ParsePrivateKey(data, []byte(testdataPassword))
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != pub.ID || !bytes.Equal(k.Public().Key, pub.Key) {
		t.Errorf("enc.key is %s, enc.pub is %s", k.Public().String(), pub.String())
	}
}

// TestStockReadsDefaultEncryptedKey: a key we encrypt with the limits
// MarshalPrivate writes (what mirror keygen does: 128 MiB) and one with
// minisign's own (1 GiB) are both read by `minisign -S`.
func TestStockReadsDefaultEncryptedKey(t *testing.T) {
	for _, tt := range []struct {
		name     string
		ops, mem uint64
		stored   []byte // opslimit and memlimit as the key file holds them
	}{
		{"ours", NewKeyKDFOpsLimit, NewKeyKDFMemLimit, []byte{0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x08, 0, 0, 0, 0}},
		{"minisign", DefaultKDFOpsLimit, DefaultKDFMemLimit, []byte{0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			restore := SetKDFLimitsForTest(tt.ops, tt.mem)
			k, _ := GenerateKey(rand.Reader)
			data, err := k.MarshalPrivate([]byte("default limits"), rand.Reader)
			restore()
			if err != nil {
				t.Fatal(err)
			}
			b := blob(t, data)
			if !bytes.Equal(b[38:54], tt.stored) {
				t.Errorf("scrypt limits in the key %x, want %x", b[38:54], tt.stored)
			}
			dir := t.TempDir()
			keyPath, msg := filepath.Join(dir, "ours.key"), filepath.Join(dir, "msg")
			os.WriteFile(keyPath, data, 0o600)
			os.WriteFile(msg, []byte("default limits\n"), 0o644)
			if out, err := runMinisignPTY(t, "default limits", "-S", "-s", keyPath, "-m", msg, "-t", "defaults"); err != nil {
				t.Fatalf("minisign -S: %v\n%s", err, out)
			}
			checkStockSignature(t, k.Public(), msg, "defaults")
			if _, err := ParsePrivateKey(data, []byte("default limits")); err != nil {
				t.Errorf("we do not read our own key back: %v", err)
			}
		})
	}
}
