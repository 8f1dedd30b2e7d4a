package operator

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/mirror-tool/mirror/internal/minisign"
)

func TestMain(m *testing.M) {
	// Keys written by tests use scrypt limits small enough for -race; the
	// format is the same, and the stock tool reads the limits from the file.
	minisign.SetKDFLimitsForTest(32768, 1<<20)
	os.Exit(m.Run())
}

var created = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed for this cross-check (scripts/test installs it): %v", name, err)
	}
	return p
}

func runTool(t *testing.T, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeKey(t *testing.T, pass []byte) (*Key, string) {
	t.Helper()
	k, err := Generate(rand.Reader, created)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "keys")
	if err := k.Write(dir, pass); err != nil {
		t.Fatal(err)
	}
	return k, dir
}

func TestWriteLoad(t *testing.T) {
	pass := []byte("correct horse")
	k, dir := writeKey(t, pass)
	for name, want := range map[string]fs.FileMode{KeyFile: 0o600, PubFile: 0o644, AscFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if need, err := NeedsPassphrase(filepath.Join(dir, KeyFile)); err != nil || !need {
		t.Errorf("NeedsPassphrase = %v, %v; want true", need, err)
	}
	l, err := Load(filepath.Join(dir, KeyFile), pass)
	if err != nil {
		t.Fatal(err)
	}
	if l.Minisign.ID != k.Minisign.ID || !bytes.Equal(l.Minisign.Key, k.Minisign.Key) {
		t.Error("loaded minisign key differs")
	}
	if l.Fingerprint() != k.Fingerprint() || !l.Created.Equal(k.Created) {
		t.Errorf("loaded openpgp key %s %v, want %s %v", l.Fingerprint(), l.Created, k.Fingerprint(), k.Created)
	}
	asc, _ := os.ReadFile(filepath.Join(dir, AscFile))
	if !bytes.Equal(asc, k.ArmoredPublic()) || !bytes.Equal(l.ArmoredPublic(), asc) {
		t.Error("operator.asc differs from ArmoredPublic")
	}
	pub, err := LoadPublic(filepath.Join(dir, PubFile))
	if err != nil {
		t.Fatal(err)
	}
	if pub.ID != k.Minisign.ID || !bytes.Equal(pub.Key, k.Public().Key) {
		t.Error("operator.pub is not the public key")
	}
}

func TestWriteUnencrypted(t *testing.T) {
	k, dir := writeKey(t, nil)
	keyPath := filepath.Join(dir, KeyFile)
	if need, err := NeedsPassphrase(keyPath); err != nil || need {
		t.Errorf("NeedsPassphrase = %v, %v; want false", need, err)
	}
	l, err := Load(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Fingerprint() != k.Fingerprint() {
		t.Error("fingerprint differs")
	}
}

func TestGenerateDeterministicOpenPGP(t *testing.T) {
	k, err := Generate(rand.Reader, created.Add(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !k.Created.Equal(created) {
		t.Errorf("Created = %v, want %v (whole seconds)", k.Created, created)
	}
	again, err := fromMinisign(k.Minisign, created)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint() != k.Fingerprint() {
		t.Error("same key and time gave another fingerprint")
	}
	if !bytes.Equal(again.ArmoredPublic(), k.ArmoredPublic()) {
		t.Error("same key and time gave another operator.asc")
	}
	later, err := fromMinisign(k.Minisign, created.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if later.Fingerprint() == k.Fingerprint() {
		t.Error("creation time does not enter the fingerprint")
	}
	if len(k.Fingerprint()) != 40 {
		t.Errorf("fingerprint %q", k.Fingerprint())
	}
}

func TestLoadWrongPassphrase(t *testing.T) {
	_, dir := writeKey(t, []byte("right"))
	keyPath := filepath.Join(dir, KeyFile)
	for _, pass := range [][]byte{[]byte("wrong"), nil} {
		_, err := Load(keyPath, pass)
		if !errors.Is(err, ErrPassphrase) {
			t.Fatalf("Load(%q) = %v, want ErrPassphrase", pass, err)
		}
		var fe *FileError
		if !errors.As(err, &fe) || fe.Path != keyPath {
			t.Errorf("error %v does not name %s", err, keyPath)
		}
	}
}

func TestWriteRefusesOverwrite(t *testing.T) {
	for _, existing := range []string{KeyFile, PubFile, AscFile} {
		t.Run(existing, func(t *testing.T) {
			dir := t.TempDir()
			old := []byte("precious\n")
			if err := os.WriteFile(filepath.Join(dir, existing), old, 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := Generate(rand.Reader, created)
			if err != nil {
				t.Fatal(err)
			}
			err = k.Write(dir, []byte("pw"))
			if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), existing) {
				t.Fatalf("Write = %v, want ErrExist naming %s", err, existing)
			}
			got, _ := os.ReadFile(filepath.Join(dir, existing))
			if !bytes.Equal(got, old) {
				t.Error("existing file was changed")
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Errorf("directory holds %d entries after a refused write, want 1", len(ents))
			}
		})
	}
}

func TestLoadRejectsForeignAsc(t *testing.T) {
	_, dir := writeKey(t, nil)
	other, otherDir := writeKey(t, nil)
	keyPath := filepath.Join(dir, KeyFile)
	ascPath := filepath.Join(dir, AscFile)

	if err := os.WriteFile(ascPath, other.ArmoredPublic(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(keyPath, nil); !errors.Is(err, ErrMismatch) {
		t.Errorf("asc of another key: %v, want ErrMismatch", err)
	}

	own, err := fromMinisign(mustLoadMinisign(t, keyPath), created)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := armor.Decode(bytes.NewReader(own.ArmoredPublic()))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(blk.Body)
	raw[len(raw)-3] ^= 1 // inside the self-signature
	var brokenSig bytes.Buffer
	w, _ := armor.Encode(&brokenSig, blk.Type, nil)
	w.Write(raw)
	w.Close()

	for name, data := range map[string][]byte{
		"broken self-signature": brokenSig.Bytes(),
		"garbage":               []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n"),
		"empty":                 nil,
		"two keys":              append(other.ArmoredPublic(), other.ArmoredPublic()...),
		"too large":             bytes.Repeat([]byte("a"), MaxArmoredSize+1),
	} {
		if err := os.WriteFile(ascPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(keyPath, nil)
		if err == nil || !strings.Contains(err.Error(), ascPath) {
			t.Errorf("%s: Load = %v, want an error naming %s", name, err, ascPath)
		}
	}

	os.Remove(ascPath)
	if _, err := Load(keyPath, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing asc: %v, want ErrNotExist", err)
	}
	_ = otherDir
}

func mustLoadMinisign(t *testing.T, keyPath string) minisign.PrivateKey {
	t.Helper()
	data, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := minisign.ParsePrivateKey(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// gpgHome makes a throwaway GNUPGHOME.
func gpgHome(t *testing.T) string {
	t.Helper()
	h, err := os.MkdirTemp("", "gnupg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", h, "--kill", "all").Run()
		os.RemoveAll(h)
	})
	if err := os.Chmod(h, 0o700); err != nil {
		t.Fatal(err)
	}
	return h
}

// dearmor makes an apt-style binary keyring from operator.asc with gpg.
func dearmor(t *testing.T, asc []byte) string {
	t.Helper()
	kr := filepath.Join(t.TempDir(), "operator.gpg")
	if out, err := runTool(t, asc, "gpg", "--batch", "--homedir", gpgHome(t), "--dearmor", "--output", kr); err != nil {
		t.Fatalf("gpg --dearmor: %v\n%s", err, out)
	}
	return kr
}

func TestGPGImportsOperatorAsc(t *testing.T) {
	k, dir := writeKey(t, nil)
	home := gpgHome(t)
	if out, err := runTool(t, nil, "gpg", "--batch", "--homedir", home, "--import", filepath.Join(dir, AscFile)); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	out, err := runTool(t, nil, "gpg", "--batch", "--homedir", home, "--with-colons", "--list-keys")
	if err != nil {
		t.Fatalf("gpg --list-keys: %v\n%s", err, out)
	}
	var pub, fpr, uid []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ":")
		switch f[0] {
		case "pub":
			pub = f
		case "fpr":
			if fpr == nil {
				fpr = f
			}
		case "uid":
			uid = f
		}
	}
	if pub == nil || fpr == nil || uid == nil {
		t.Fatalf("gpg lists no key:\n%s", out)
	}
	if pub[3] != "22" || pub[16] != "ed25519" {
		t.Errorf("gpg sees algorithm %s curve %s, want 22 ed25519", pub[3], pub[16])
	}
	if !strings.Contains(pub[11], "s") {
		t.Errorf("gpg sees capabilities %q, want signing", pub[11])
	}
	if pub[5] != "1795597200" {
		t.Errorf("gpg sees creation %s, want %d", pub[5], created.Unix())
	}
	if fpr[9] != k.Fingerprint() {
		t.Errorf("gpg fingerprint %s, ours %s", fpr[9], k.Fingerprint())
	}
	if uid[9] != UserID(k.Minisign.ID) {
		t.Errorf("gpg user id %q, want %q", uid[9], UserID(k.Minisign.ID))
	}
}

func TestGPGVAcceptsClearSign(t *testing.T) {
	k, dir := writeKey(t, []byte("pw"))
	l, err := Load(filepath.Join(dir, KeyFile), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	kr := dearmor(t, k.ArmoredPublic())
	text := []byte("Origin: mirror\nSuite: bookworm\n- a dash line\nSHA256:\n 0123 42 main/binary-amd64/Packages\n")
	var b bytes.Buffer
	if err := l.ClearSign(&b, text, created.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	good := filepath.Join(tmp, "InRelease")
	os.WriteFile(good, b.Bytes(), 0o644)
	outFile := filepath.Join(tmp, "out")
	if out, err := runTool(t, nil, "gpgv", "--keyring", kr, "--output", outFile, good); err != nil {
		t.Fatalf("gpgv rejects our InRelease: %v\n%s\n%s", err, out, b.Bytes())
	}
	if got, _ := os.ReadFile(outFile); !bytes.Equal(got, text) {
		t.Errorf("gpgv extracted %q, want %q", got, text)
	}

	bad := filepath.Join(tmp, "InRelease.bad")
	os.WriteFile(bad, bytes.Replace(b.Bytes(), []byte("bookworm"), []byte("bullseye"), 1), 0o644)
	if out, err := runTool(t, nil, "gpgv", "--keyring", kr, bad); err == nil {
		t.Errorf("gpgv accepts a tampered InRelease:\n%s", out)
	}
	other, err := Generate(rand.Reader, created)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, nil, "gpgv", "--keyring", dearmor(t, other.ArmoredPublic()), good); err == nil {
		t.Errorf("gpgv accepts our InRelease with another operator's keyring:\n%s", out)
	}
}

func TestGPGVAcceptsDetachSign(t *testing.T) {
	k, _ := writeKey(t, nil)
	kr := dearmor(t, k.ArmoredPublic())
	msg := []byte("Origin: mirror\nLabel: mirror\n")
	var sig bytes.Buffer
	if err := k.DetachSign(&sig, bytes.NewReader(msg), created.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sig.Bytes(), []byte("-----BEGIN PGP SIGNATURE-----")) {
		t.Errorf("not an armored signature: %q", sig.Bytes())
	}
	tmp := t.TempDir()
	rel, relSig := filepath.Join(tmp, "Release"), filepath.Join(tmp, "Release.gpg")
	os.WriteFile(rel, msg, 0o644)
	os.WriteFile(relSig, sig.Bytes(), 0o644)
	if out, err := runTool(t, nil, "gpgv", "--keyring", kr, relSig, rel); err != nil {
		t.Fatalf("gpgv rejects our Release.gpg: %v\n%s", err, out)
	}
	os.WriteFile(rel, append(msg, 'x'), 0o644)
	if out, err := runTool(t, nil, "gpgv", "--keyring", kr, relSig, rel); err == nil {
		t.Errorf("gpgv accepts Release.gpg over a changed Release:\n%s", out)
	}
}

func TestMinisignVerifiesLoadedKey(t *testing.T) {
	_, dir := writeKey(t, []byte("pw"))
	l, err := Load(filepath.Join(dir, KeyFile), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("bundle bytes\n")
	sig, err := l.Minisign.Sign(bytes.NewReader(msg), "sequence:7", "signed by mirror")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	f := filepath.Join(tmp, "b.tar.zst")
	os.WriteFile(f, msg, 0o644)
	os.WriteFile(f+".minisig", sig.Marshal(), 0o644)
	out, err := runTool(t, nil, "minisign", "-V", "-p", filepath.Join(dir, PubFile), "-m", f)
	if err != nil {
		t.Fatalf("minisign -V rejects: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Trusted comment: sequence:7") {
		t.Errorf("minisign -V output lacks the trusted comment:\n%s", out)
	}
	os.WriteFile(f, append(msg, 'x'), 0o644)
	if out, err := runTool(t, nil, "minisign", "-V", "-p", filepath.Join(dir, PubFile), "-m", f); err == nil {
		t.Errorf("minisign -V accepts a changed file:\n%s", out)
	}
}

// TestLoadGPGReexportedAsc: an operator.asc that went through gpg (imported
// and exported again, as an operator might do to inspect or publish it)
// still loads, with the same fingerprint.
func TestLoadGPGReexportedAsc(t *testing.T) {
	k, dir := writeKey(t, nil)
	home := gpgHome(t)
	ascPath := filepath.Join(dir, AscFile)
	if out, err := runTool(t, nil, "gpg", "--batch", "--homedir", home, "--import", ascPath); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	cmd := exec.Command(tool(t, "gpg"), "--batch", "--homedir", home, "--armor", "--export", k.Fingerprint())
	exported, err := cmd.Output()
	if err != nil || !bytes.Contains(exported, []byte("BEGIN PGP PUBLIC KEY BLOCK")) {
		t.Fatalf("gpg --export: %v\n%s", err, exported)
	}
	if err := os.WriteFile(ascPath, exported, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Load(filepath.Join(dir, KeyFile), nil)
	if err != nil {
		t.Fatalf("Load with gpg's export as operator.asc: %v", err)
	}
	if l.Fingerprint() != k.Fingerprint() || !l.Created.Equal(k.Created) {
		t.Errorf("fingerprint %s created %v, want %s %v", l.Fingerprint(), l.Created, k.Fingerprint(), k.Created)
	}
}

// TestSignaturesDeterministic: the same text, key and time give the same
// bytes (bundles that carry InRelease are byte-identical run to run), and
// another time gives other bytes.
func TestSignaturesDeterministic(t *testing.T) {
	k, _ := writeKey(t, nil)
	text := []byte("Suite: bookworm\n")
	sign := func(at time.Time) (clear, detached []byte) {
		var c, d bytes.Buffer
		if err := k.ClearSign(&c, text, at); err != nil {
			t.Fatal(err)
		}
		if err := k.DetachSign(&d, bytes.NewReader(text), at); err != nil {
			t.Fatal(err)
		}
		return c.Bytes(), d.Bytes()
	}
	c1, d1 := sign(created)
	c2, d2 := sign(created)
	if !bytes.Equal(c1, c2) || !bytes.Equal(d1, d2) {
		t.Error("same inputs gave different signatures")
	}
	c3, d3 := sign(created.Add(time.Second))
	if bytes.Equal(c1, c3) || bytes.Equal(d1, d3) {
		t.Error("the signing time does not enter the signature")
	}
	// The CRC-24 line GnuPG 2.2 needs (see withArmorChecksum).
	for _, b := range [][]byte{c1, d1} {
		if !regexp.MustCompile(`\n=[A-Za-z0-9+/]{4}\n-----END PGP SIGNATURE-----\n$`).Match(b) {
			t.Errorf("armor without a CRC-24 line:\n%s", b)
		}
	}
}

func FuzzReadArmoredPublic(f *testing.F) {
	for i := range 3 {
		k, err := Generate(rand.Reader, created.Add(time.Duration(i)*time.Hour))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(k.ArmoredPublic())
	}
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, at, err := readArmoredPublic(data)
		if err != nil {
			if pub != nil || !at.IsZero() {
				t.Fatalf("key returned with error %v", err)
			}
			if !errors.Is(err, ErrMalformedPublic) {
				t.Fatalf("error %v does not match ErrMalformedPublic", err)
			}
			return
		}
		if len(pub) != 32 || at.IsZero() {
			t.Fatalf("accepted a key of %d bytes created %v", len(pub), at)
		}
	})
}

// TestSqvAcceptsDetachSign: sqv (Sequoia), which apt uses instead of gpgv
// from Debian 13 on, accepts Release.gpg made by DetachSign with the
// dearmored operator.asc, and refuses it over a changed Release.
func TestSqvAcceptsDetachSign(t *testing.T) {
	k, err := Generate(rand.Reader, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kr := dearmor(t, k.ArmoredPublic())
	msg := []byte("Origin: mirror\nSuite: bookworm\n")
	var sig bytes.Buffer
	// sqv refuses signatures from the future: sign a minute ago.
	if err := k.DetachSign(&sig, bytes.NewReader(msg), time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	rel, relSig := filepath.Join(tmp, "Release"), filepath.Join(tmp, "Release.gpg")
	os.WriteFile(rel, msg, 0o644)
	os.WriteFile(relSig, sig.Bytes(), 0o644)
	out, err := runTool(t, nil, "sqv", "--keyring", kr, relSig, rel)
	if err != nil {
		t.Fatalf("sqv rejects our Release.gpg: %v\n%s", err, out)
	}
	if !strings.Contains(out, k.Fingerprint()) {
		t.Errorf("sqv names another signer:\n%s", out)
	}
	os.WriteFile(rel, append(msg, 'x'), 0o644)
	if out, err := runTool(t, nil, "sqv", "--keyring", kr, relSig, rel); err == nil {
		t.Errorf("sqv accepts Release.gpg over a changed Release:\n%s", out)
	}
}

// TestCheckPublic: without the passphrase, CheckPublic finds a missing,
// damaged or foreign operator.asc beside an encrypted key, and accepts the
// files keygen wrote.
func TestCheckPublic(t *testing.T) {
	_, dir := writeKey(t, []byte("pass"))
	other, _ := writeKey(t, nil)
	keyPath := filepath.Join(dir, KeyFile)
	ascPath := filepath.Join(dir, AscFile)
	own, err := os.ReadFile(ascPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPublic(keyPath); err != nil {
		t.Fatalf("keygen's files: %v", err)
	}
	for _, c := range []struct {
		name string
		asc  []byte // nil: no operator.asc
		want error
	}{
		{"missing", nil, fs.ErrNotExist},
		{"damaged", own[:len(own)/2], ErrMalformedPublic},
		{"another key's", other.ArmoredPublic(), ErrMismatch},
	} {
		os.Remove(ascPath)
		if c.asc != nil {
			os.WriteFile(ascPath, c.asc, 0o644)
		}
		if err := CheckPublic(keyPath); !errors.Is(err, c.want) || !strings.Contains(err.Error(), ascPath) {
			t.Errorf("%s operator.asc: %v, want %v naming %s", c.name, err, c.want, ascPath)
		}
	}
	// Without operator.pub, only operator.asc's own shape can be checked.
	os.WriteFile(ascPath, own, 0o644)
	os.Remove(filepath.Join(dir, PubFile))
	if err := CheckPublic(keyPath); err != nil {
		t.Fatalf("no operator.pub: %v", err)
	}
}
