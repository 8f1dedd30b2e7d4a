package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/internal/operator"
)

// TestSameKeyInTwoEntries: one private key may stand behind one trust-file
// entry only, whatever form each entry gives it (minisign, SSH, OpenPGP):
// otherwise two signatures by it would meet a threshold of 2. The
// operator's own operator.pub and operator.asc are such a pair.
func TestSameKeyInTwoEntries(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mk := minisign.PrivateKey{Key: priv}
	copy(mk.ID[:], "testkey1")
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	op, err := operator.Generate(rand.Reader, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	otherSSH, _ := ssh.NewPublicKey(other)
	for name, keys := range map[string][]KeyConfig{
		"minisign and SSH": {
			{Name: "alice-minisign", Minisign: mk.Public().String()},
			{Name: "alice-ssh", SSH: string(ssh.MarshalAuthorizedKey(sshPub))},
		},
		"operator.pub and operator.asc": {
			{Name: "op-pub", Minisign: string(op.Public().File())},
			{Name: "op-asc", OpenPGP: string(op.ArmoredPublic())},
		},
	} {
		for i := range keys {
			keys[i].Allow = []string{"tools:**"}
		}
		_, err := NewPolicy(Config{Keys: keys, Rules: []RuleConfig{{Packages: []string{"tools:**"}, Threshold: 2}}}, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "same key") {
			t.Errorf("%s: NewPolicy = %v, want the second entry refused as the same key", name, err)
		}
	}
	// Two different keys in two forms are two keys.
	if _, err := NewPolicy(Config{Keys: []KeyConfig{
		{Name: "alice", Minisign: mk.Public().String(), Allow: []string{"tools:**"}},
		{Name: "bob", SSH: string(ssh.MarshalAuthorizedKey(otherSSH)), Allow: []string{"tools:**"}},
	}}, t.TempDir()); err != nil {
		t.Fatalf("two different keys: %v", err)
	}
}

// TestTwoArmoredBlocksInOneFile: a key file with two armored blocks loads
// both keys (a block after the first was swallowed by the armor decoder's
// buffer, and its key silently left out).
func TestTwoArmoredBlocksInOneFile(t *testing.T) {
	a := readFixture(t, "openpgp/ed25519.asc")
	b := readFixture(t, "openpgp/p256.asc")
	p, err := NewPolicy(Config{Keys: []KeyConfig{{Name: "two", OpenPGP: string(a) + string(b), Allow: []string{"tools:**"}}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	one, err := NewPolicy(Config{Keys: []KeyConfig{{Name: "one", OpenPGP: string(a), Allow: []string{"tools:**"}}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got, first := len(p.Keys()[0].IDs), len(one.Keys()[0].IDs); got <= first {
		t.Fatalf("two blocks give %d ids, one block %d: the second block was dropped", got, first)
	}
	for _, sig := range []string{"openpgp/p256.hello.txt.sig", "openpgp/ed25519.hello.txt.sig"} {
		v, err := p.Check(context.Background(), "tools:hello.txt", bytes.NewReader(readFixture(t, "hello.txt")), sigs(t, sig), now)
		if err != nil || !v.Accepted {
			t.Errorf("%s: %v %s", sig, err, v)
		}
	}
}

// TestRevocationBlockInKeyFile: a revocation certificate appended to a key
// file as its own armored block (gpg writes one for every new key) was
// dropped with the rest of the file after the first block, so the key
// stayed trusted. The trust file now fails to load instead: the operator
// takes the revoked key out, or marks it `revoked` in its entry.
func TestRevocationBlockInKeyFile(t *testing.T) {
	gpg := needTool(t, "gpg")
	home, err := os.MkdirTemp("", "gpg") // short: gpg-agent's socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	run := func(args ...string) []byte {
		cmd := exec.Command(gpg, append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	run("--quick-gen-key", "Rev <rev@example.org>", "ed25519", "sign", "never")
	key := run("--armor", "--export", "rev@example.org")
	revs, err := filepath.Glob(filepath.Join(home, "openpgp-revocs.d", "*.rev"))
	if err != nil || len(revs) != 1 {
		t.Fatalf("gpg's revocation certificate: %v %v", revs, err)
	}
	raw, err := os.ReadFile(revs[0])
	if err != nil {
		t.Fatal(err)
	}
	// gpg guards the certificate with a ':' before its BEGIN line.
	i := bytes.Index(raw, []byte(":-----BEGIN PGP PUBLIC KEY BLOCK-----"))
	if i < 0 {
		t.Fatalf("no guarded block in %s", revs[0])
	}
	rev := raw[i+1:]
	if _, err := NewPolicy(Config{Keys: []KeyConfig{{Name: "k", OpenPGP: string(key), Allow: []string{"tools:**"}}}}, t.TempDir()); err != nil {
		t.Fatalf("the key alone: %v", err)
	}
	_, err = NewPolicy(Config{Keys: []KeyConfig{{Name: "k", OpenPGP: string(key) + string(rev), Allow: []string{"tools:**"}}}}, t.TempDir())
	if err == nil {
		t.Fatal("a key file with a revocation block appended loads as if the key were not revoked")
	}
}
