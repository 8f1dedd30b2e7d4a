package verify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// needTool fails (never skips) when a stock tool is missing: the
// cross-check must run to count.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required for the cross-check (scripts/test installs it): %v", name, err)
	}
	return p
}

// TestAgreesWithStockTools runs gpgv, minisign -V and ssh-keygen -Y verify
// on the fixtures, the genuine and the tampered file, and checks that this
// package reaches the same yes/no as the stock tool (and that the genuine
// file passes, so the comparison is not vacuous).
func TestAgreesWithStockTools(t *testing.T) {
	gpgv, mini, sshKeygen := needTool(t, "gpgv"), needTool(t, "minisign"), needTool(t, "ssh-keygen")
	abs, err := filepath.Abs(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	p := loadFixturePolicy(t)

	type cross struct {
		name string
		sig  string
		tool func(file string) *exec.Cmd
	}
	var cases []cross
	for _, k := range []string{"rsa2048", "rsa3072", "rsa4096", "ed25519", "p256", "p384", "subkey"} {
		// gpgv wants a binary keyring.
		block, err := armor.Decode(bytes.NewReader(readFixture(t, "openpgp/"+k+".asc")))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(block.Body)
		if err != nil {
			t.Fatal(err)
		}
		ring := filepath.Join(tmp, k+".gpg")
		if err := os.WriteFile(ring, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, ext := range []string{"asc", "sig"} {
			sig := filepath.Join(abs, "openpgp", k+".hello.txt."+ext)
			cases = append(cases, cross{"gpgv/" + k + "/" + ext, "openpgp/" + k + ".hello.txt." + ext, func(file string) *exec.Cmd {
				return exec.Command(gpgv, "--keyring", ring, sig, file)
			}})
		}
	}
	for _, k := range []string{"mini1", "mini2"} {
		for _, form := range []string{"minisig", "legacy.minisig"} {
			sig := filepath.Join(abs, "minisign", k+".hello.txt."+form)
			pub := filepath.Join(abs, "minisign", k+".pub")
			cases = append(cases, cross{"minisign/" + k + "/" + form, "minisign/" + k + ".hello.txt." + form, func(file string) *exec.Cmd {
				return exec.Command(mini, "-V", "-q", "-p", pub, "-m", file, "-x", sig)
			}})
		}
	}
	for _, k := range []string{"ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa"} {
		for _, s := range []string{"sig", "sha256.sig"} {
			if s == "sha256.sig" && k != "ed25519" && k != "rsa" {
				continue
			}
			sig := filepath.Join(abs, "ssh", k+".hello.txt."+s)
			name := "ssh/" + k + ".hello.txt." + s
			id := k + "@example.org"
			cases = append(cases, cross{"ssh-keygen/" + k + "/" + s, name, func(file string) *exec.Cmd {
				f, err := os.Open(file)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				c := exec.Command(sshKeygen, "-Y", "verify", "-f", filepath.Join(abs, "ssh", "allowed_signers"), "-I", id, "-n", "file", "-s", sig)
				c.Stdin = f
				return c
			}})
		}
	}
	// The namespace must match for ssh-keygen too.
	cases = append(cases, cross{"ssh-keygen/other-namespace", "ssh/ed25519.hello.txt.other-namespace.sig", func(file string) *exec.Cmd {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		c := exec.Command(sshKeygen, "-Y", "verify", "-f", filepath.Join(abs, "ssh", "allowed_signers"), "-I", "ed25519@example.org", "-n", "file", "-s", filepath.Join(abs, "ssh", "ed25519.hello.txt.other-namespace.sig"))
		c.Stdin = f
		return c
	}})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, file := range []string{"hello.txt", "hello.txt.tampered"} {
				var out bytes.Buffer
				cmd := c.tool(filepath.Join(abs, file))
				cmd.Stdout, cmd.Stderr = &out, &out
				cmd.Env = append(os.Environ(), "GNUPGHOME="+tmp)
				err := cmd.Run()
				var exit *exec.ExitError
				if err != nil && !errors.As(err, &exit) {
					t.Fatalf("%s did not run: %v %s", cmd.Path, err, out.String())
				}
				toolOK := err == nil
				v, err := p.Check(context.Background(), "tools:hello", bytes.NewReader(readFixture(t, file)), sigs(t, c.sig), now)
				if err != nil {
					t.Fatal(err)
				}
				if v.Accepted != toolOK {
					t.Fatalf("%s: stock tool says %v, verify says %v\n%s\n%s", file, toolOK, v.Accepted, strings.TrimSpace(out.String()), v)
				}
				if file == "hello.txt" && !strings.Contains(c.name, "other-namespace") && !v.Accepted {
					t.Fatalf("the genuine file must pass:\n%s", v)
				}
			}
		})
	}
}
