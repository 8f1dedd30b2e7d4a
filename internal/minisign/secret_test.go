package minisign

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScryptParams(t *testing.T) {
	// libsodium's pickparams for the limits minisign uses and for the
	// small ones of the tests: N = 2^20, r = 8, p = 1 is scrypt's
	// well-known "sensitive" setting (1 GiB).
	tests := []struct {
		ops, mem uint64
		logN     uint
		r, p     uint64
	}{
		{DefaultKDFOpsLimit, DefaultKDFMemLimit, 20, 8, 1},
		// Ours: the same N*p (2^20) in an eighth of the memory (128 MiB).
		{NewKeyKDFOpsLimit, NewKeyKDFMemLimit, 17, 8, 8},
		{32768, 1 << 20, 10, 8, 1},
		{524288, 16777216, 14, 8, 1}, // libsodium's "interactive" limits
		{1, 1 << 30, 10, 8, 1},       // opslimit raised to 32768, first branch
		{1 << 24, 1 << 20, 10, 8, 512},
	}
	for _, tt := range tests {
		logN, r, p := scryptParams(tt.ops, tt.mem)
		if logN != tt.logN || r != tt.r || p != tt.p {
			t.Errorf("scryptParams(%d, %d) = 2^%d, %d, %d; want 2^%d, %d, %d", tt.ops, tt.mem, logN, r, p, tt.logN, tt.r, tt.p)
		}
	}
}

// TestKDFFits: the memory scrypt really takes is bounded, not only the
// file's memlimit: a tiny memlimit with the largest opslimit asks for p =
// 2^21 (a 2 GiB B buffer) and is refused; the limits of minisign's keys
// and of ours fit.
func TestKDFFits(t *testing.T) {
	for _, tt := range []struct {
		ops, mem uint64
		ok       bool
	}{
		{DefaultKDFOpsLimit, DefaultKDFMemLimit, true},
		{NewKeyKDFOpsLimit, NewKeyKDFMemLimit, true},
		{MaxKDFOpsLimit, MaxKDFMemLimit, true},
		{524288, 16777216, true},
		{MaxKDFOpsLimit, 0, false},
		{MaxKDFOpsLimit, 1 << 15, false},
	} {
		err := kdfFits(tt.ops, tt.mem, MaxKDFMemLimit)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrMalformed) {
			logN, r, p := scryptParams(tt.ops, tt.mem)
			t.Errorf("kdfFits(%d, %d) = %v (N = 2^%d, r = %d, p = %d), want ok %v", tt.ops, tt.mem, err, logN, r, p, tt.ok)
		}
	}
}

func TestParseStockUnencryptedKey(t *testing.T) {
	data := readTestdata(t, "plain.key")
	pub, err := ParsePublicKey(readTestdata(t, "plain.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if enc, err := PrivateKeyEncrypted(data); err != nil || enc {
		t.Fatalf("PrivateKeyEncrypted = %v, %v; want false", enc, err)
	}
	for _, pass := range [][]byte{nil, []byte("ignored")} {
		k, err := ParsePrivateKey(data, pass)
		if err != nil {
			t.Fatal(err)
		}
		if k.ID != pub.ID || !bytes.Equal(k.Public().Key, pub.Key) {
			t.Errorf("plain.key is %s, plain.pub is %s", k.Public().String(), pub.String())
		}
	}
}

func TestPrivateKeyRoundTrip(t *testing.T) {
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, pass := range [][]byte{nil, []byte("pw"), []byte("pässwörd with spaces")} {
		data, err := k.MarshalPrivate(pass, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := PrivateKeyEncrypted(data)
		if err != nil || enc != (pass != nil) {
			t.Errorf("PrivateKeyEncrypted = %v, %v; want %v", enc, err, pass != nil)
		}
		got, err := ParsePrivateKey(data, pass)
		if err != nil {
			t.Fatalf("pass %q: %v", pass, err)
		}
		if got.ID != k.ID || !bytes.Equal(got.Key, k.Key) {
			t.Errorf("pass %q: round trip changed the key", pass)
		}
		if pass != nil {
			for _, wrong := range [][]byte{nil, []byte("wrong"), append(bytes.Clone(pass), 'x')} {
				if got, err := ParsePrivateKey(data, wrong); !errors.Is(err, ErrPassphrase) || got.Key != nil {
					t.Errorf("wrong passphrase %q: %v, want ErrPassphrase and no key", wrong, err)
				}
			}
		}
	}
	if _, err := k.MarshalPrivate([]byte{}, rand.Reader); !errors.Is(err, ErrPassphrase) {
		t.Errorf("empty passphrase: %v, want ErrPassphrase", err)
	}
}

// blob returns the decoded key line of a secret key file.
func blob(t *testing.T, data []byte) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(strings.Split(string(data), "\n")[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keyFile(b []byte) []byte {
	return []byte("untrusted comment: x\n" + base64.StdEncoding.EncodeToString(b) + "\n")
}

func TestParsePrivateKeyRejects(t *testing.T) {
	k, _ := GenerateKey(rand.Reader)
	plain, _ := k.MarshalPrivate(nil, rand.Reader)
	enc, _ := k.MarshalPrivate([]byte("pw"), rand.Reader)
	mut := func(src []byte, f func(b []byte)) []byte {
		b := blob(t, src)
		f(b)
		return keyFile(b)
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"too large", append(bytes.Clone(plain), bytes.Repeat([]byte(" "), MaxPrivateKeySize)...), ErrMalformed},
		{"no comment", []byte(strings.Split(string(plain), "\n")[1] + "\n"), ErrMalformed},
		{"short", keyFile(blob(t, plain)[:157]), ErrMalformed},
		{"long", keyFile(append(blob(t, plain), 0)), ErrMalformed},
		{"not base64", []byte("untrusted comment: x\n!!!!\n"), ErrMalformed},
		{"algorithm", mut(plain, func(b []byte) { b[1] = 'X' }), ErrUnsupported},
		{"kdf", mut(plain, func(b []byte) { b[2] = 'X' }), ErrUnsupported},
		{"checksum algorithm", mut(plain, func(b []byte) { b[5] = '3' }), ErrUnsupported},
		{"plain checksum", mut(plain, func(b []byte) { b[len(b)-1] ^= 1 }), ErrMalformed},
		{"plain secret flipped", mut(plain, func(b []byte) { b[60] ^= 1 }), ErrMalformed},
		{"plain public half wrong", mut(plain, func(b []byte) {
			// A consistent checksum over a secret whose public half is
			// not the seed's.
			copy(b[54+8+32:54+8+64], make([]byte, 32))
			sum := secretChecksum(KeyID(b[54:62]), b[62:126])
			copy(b[126:], sum[:])
		}), ErrMalformed},
		{"encrypted flipped", mut(enc, func(b []byte) { b[100] ^= 1 }), ErrPassphrase},
		{"salt flipped", mut(enc, func(b []byte) { b[10] ^= 1 }), ErrPassphrase},
		{"opslimit too high", mut(enc, func(b []byte) { b[38+7] = 1 }), ErrMalformed},
		{"memlimit too high", mut(enc, func(b []byte) { b[46+7] = 1 }), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrivateKey(tt.data, []byte("pw"))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got.Key != nil || got.ID != (KeyID{}) {
				t.Errorf("a key was returned with the error")
			}
		})
	}
}

// TestStockReadsOurUnencryptedKey: `minisign -S -W` signs with a key we
// wrote without a passphrase, and the signature verifies.
func TestStockReadsOurUnencryptedKey(t *testing.T) {
	// A key number whose top hex digit is 0: minisign prints it without
	// the leading zero (a random key hits this one time in sixteen).
	var k PrivateKey
	for {
		k, _ = GenerateKey(rand.Reader)
		if binary.LittleEndian.Uint64(k.ID[:])>>60 == 0 {
			break
		}
	}
	data, err := k.MarshalPrivate(nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyPath, msg := filepath.Join(dir, "ours.key"), filepath.Join(dir, "msg")
	os.WriteFile(keyPath, data, 0o600)
	os.WriteFile(msg, []byte("signed by the stock tool with our key\n"), 0o644)
	if out, err := runMinisign(t, "-S", "-W", "-s", keyPath, "-m", msg, "-t", "stock"); err != nil {
		t.Fatalf("minisign -S -W: %v\n%s", err, out)
	}
	checkStockSignature(t, k.Public(), msg, "stock")

	// minisign -R recreates, from our secret key file, exactly the public
	// key file we write.
	pubPath := filepath.Join(dir, "recreated.pub")
	if out, err := runMinisign(t, "-R", "-W", "-s", keyPath, "-p", pubPath); err != nil {
		t.Fatalf("minisign -R: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(pubPath); !bytes.Equal(got, k.Public().File()) {
		t.Errorf("minisign -R wrote\n%s\nwe write\n%s", got, k.Public().File())
	}
}

// TestStockReadsOurEncryptedKey: `minisign -S` decrypts a key we encrypted
// (with the tests' small scrypt limits, which the tool reads from the file)
// when given the passphrase on a terminal, and refuses a wrong one.
func TestStockReadsOurEncryptedKey(t *testing.T) {
	k, _ := GenerateKey(rand.Reader)
	data, err := k.MarshalPrivate([]byte("our passphrase"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyPath, msg := filepath.Join(dir, "ours.key"), filepath.Join(dir, "msg")
	os.WriteFile(keyPath, data, 0o600)
	os.WriteFile(msg, []byte("signed by the stock tool with our encrypted key\n"), 0o644)
	if out, err := runMinisignPTY(t, "wrong passphrase", "-S", "-s", keyPath, "-m", msg); err == nil {
		t.Fatalf("minisign -S accepted a wrong passphrase:\n%s", out)
	}
	if out, err := runMinisignPTY(t, "our passphrase", "-S", "-s", keyPath, "-m", msg, "-t", "stock encrypted"); err != nil {
		t.Fatalf("minisign -S: %v\n%s", err, out)
	}
	checkStockSignature(t, k.Public(), msg, "stock encrypted")
}

func checkStockSignature(t *testing.T, pub PublicKey, msg, trusted string) {
	t.Helper()
	sigData, err := os.ReadFile(msg + ".minisig")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ParseSignature(sigData)
	if err != nil {
		t.Fatal(err)
	}
	if sig.TrustedComment != trusted {
		t.Errorf("trusted comment %q, want %q", sig.TrustedComment, trusted)
	}
	f, err := os.Open(msg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pub.Verify(sig, f); err != nil {
		t.Errorf("the stock tool's signature with our key does not verify: %v", err)
	}
}

// TestSwappedKeyFiles: a secret key file given where a public key is
// expected, or a public key file where the secret key is, is named for what
// it is (stock minisign's files, as an operator would mix them up).
func TestSwappedKeyFiles(t *testing.T) {
	for _, name := range []string{"plain", "enc"} {
		sec, err := os.ReadFile(filepath.Join("testdata", name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		pub, err := os.ReadFile(filepath.Join("testdata", name+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePublicKey(sec); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "this is a minisign secret key, not a public key") {
			t.Errorf("%s.key as a public key: %v", name, err)
		}
		if _, err := ParsePrivateKey(pub, nil); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "this is a minisign public key, not a secret key") {
			t.Errorf("%s.pub as a secret key: %v", name, err)
		}
		if _, err := PrivateKeyEncrypted(pub); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "this is a minisign public key") {
			t.Errorf("%s.pub, encrypted?: %v", name, err)
		}
	}
}
