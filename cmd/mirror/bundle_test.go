package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/minisign"
)

// bndFixture is a small bundle, whole and split, with its operator.pub.
type bndFixture struct {
	dir   string // holds operator.pub, other.pub
	whole string // dir/w/b.tar.zst
	parts []string
	m     *bundle.Manifest
}

func bndKey(t *testing.T, seed byte) minisign.PrivateKey {
	k, err := minisign.GenerateKey(rand.NewChaCha8([32]byte{seed, 'c', 'l', 'i'}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func bndWrite(t *testing.T, dir string, key minisign.PrivateKey, expires time.Time, opt bundle.Options) (*bundle.Written, *bundle.Manifest) {
	t.Helper()
	return bndWriteAt(t, dir, key, expires, opt, "tools/p%d.tar.gz")
}

// bndWriteAt is bndWrite with the packages' paths from pathFmt (one %d).
func bndWriteAt(t *testing.T, dir string, key minisign.PrivateKey, expires time.Time, opt bundle.Options, pathFmt string) (*bundle.Written, *bundle.Manifest) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	blobs := map[string][]byte{}
	m := &bundle.Manifest{
		Sequence: 4, BaseSequence: 0, Created: expires.Add(-time.Hour), Expires: expires, ToolVersion: "test",
		Sources: []bundle.Source{{Name: "tools", Type: "files", URL: "https://example.org/"}},
	}
	for i, n := range []int{0, 10, 70000} {
		b := make([]byte, n)
		rand.NewChaCha8([32]byte{byte(i)}).Read(b)
		s := sha256.Sum256(b)
		sum := hex.EncodeToString(s[:])
		blobs[sum] = b
		path := fmt.Sprintf(pathFmt, i)
		m.Packages = append(m.Packages, bundle.Package{Source: "tools", Name: fmt.Sprintf("p%d", i), Version: "1.2",
			Path: path, Size: int64(n), SHA256: sum, Keys: []string{"release\u200b"}})
		m.Tree = append(m.Tree, bundle.Entry{Path: path, SHA256: sum, Size: int64(n)})
		m.Blobs = append(m.Blobs, bundle.Blob{SHA256: sum, Size: int64(n)})
	}
	m.Rejected = []bundle.Rejected{{Source: "tools", Name: "evil", Reason: "out of scope"}}
	src := func(s string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blobs[s])), nil }
	w, err := bundle.Write(context.Background(), dir, "b", m, key, src, opt)
	if err != nil {
		t.Fatal(err)
	}
	return w, m
}

func newBndFixture(t *testing.T, expires time.Time) *bndFixture {
	dir := t.TempDir()
	key := bndKey(t, 1)
	if err := os.WriteFile(filepath.Join(dir, "operator.pub"), key.Public().File(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.pub"), bndKey(t, 2).Public().File(), 0o644); err != nil {
		t.Fatal(err)
	}
	w, m := bndWrite(t, filepath.Join(dir, "w"), key, expires, bundle.Options{})
	ws, _ := bndWrite(t, filepath.Join(dir, "s"), key, expires, bundle.Options{MaxPartSize: 20000})
	return &bndFixture{dir: dir, whole: w.Paths[0], parts: ws.Paths[:len(ws.Paths)-1], m: m}
}

func bndRun(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"mirror"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestVerifyCommand(t *testing.T) {
	f := newBndFixture(t, time.Now().Add(24*time.Hour))
	pub := filepath.Join(f.dir, "operator.pub")
	splitName := strings.TrimSuffix(f.parts[0], ".part-001")
	if len(f.parts) < 3 {
		t.Fatalf("%d parts", len(f.parts))
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"whole file", []string{"verify", "--pub", pub, f.whole}, "file signature checked"},
		{"parts by name", []string{"verify", "--pub", pub, splitName}, fmt.Sprintf("%d signed parts and the file signature checked", len(f.parts))},
		{"parts listed", append([]string{"verify", "--pub", pub}, f.parts...), "signed parts and the file signature checked"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := bndRun(c.args...)
			if code != exitOK || !strings.HasPrefix(out, "OK ") || !strings.Contains(out, f.m.ID) ||
				!strings.Contains(out, "sequence 4 (full)") || !strings.Contains(out, "3 blobs") || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
			}
		})
	}

	t.Run("no .minisig", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "c.tar.zst")
		data, _ := os.ReadFile(f.whole)
		os.WriteFile(p, data, 0o644)
		code, out, errs := bndRun("verify", "--pub", pub, p)
		if code != exitOK || !strings.Contains(out, "no .minisig") || !strings.Contains(errs, "warning: "+p+".minisig is missing") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})
	t.Run("bad .minisig", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "c.tar.zst")
		data, _ := os.ReadFile(f.whole)
		os.WriteFile(p, data, 0o644)
		raw, _ := os.ReadFile(f.whole + ".minisig")
		sig, err := minisign.ParseSignature(raw)
		if err != nil {
			t.Fatal(err)
		}
		sig.Sig[0] ^= 1
		os.WriteFile(p+".minisig", sig.Marshal(), 0o644)
		code, out, errs := bndRun("verify", "--pub", pub, p)
		if code != exitFailed || out != "" || !strings.Contains(errs, "c.tar.zst.minisig") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})
	t.Run("another key", func(t *testing.T) {
		code, out, errs := bndRun("verify", "--pub", filepath.Join(f.dir, "other.pub"), f.whole)
		other := bndKey(t, 2).Public().ID.String()
		own := bndKey(t, 1).Public().ID.String()
		if code != exitFailed || out != "" || !strings.Contains(errs, other) || !strings.Contains(errs, own) || !strings.Contains(errs, "hint: ") {
			t.Fatalf("exit %d, stdout %q, stderr %q: want exit 1 naming both key ids", code, out, errs)
		}
	})
	t.Run("damaged part", func(t *testing.T) {
		data, _ := os.ReadFile(f.parts[1])
		data[len(data)-10] ^= 1
		if err := os.WriteFile(f.parts[1], data, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := bndRun("verify", "--pub", pub, splitName)
		if code != exitFailed || out != "" || !strings.Contains(errs, "part 2") || !strings.Contains(errs, "copy part 2") {
			t.Fatalf("exit %d, stdout %q, stderr %q: want exit 1 naming part 2", code, out, errs)
		}
	})
	t.Run("usage", func(t *testing.T) {
		if code, _, _ := bndRun("verify", f.whole); code != exitUsage {
			t.Fatalf("verify without --pub: exit %d, want 2", code)
		}
		if code, _, _ := bndRun("verify", "--pub", pub); code != exitUsage {
			t.Fatalf("verify without a bundle: exit %d, want 2", code)
		}
		if code, _, errs := bndRun("verify", "--pub", pub, filepath.Join(f.dir, "nope.tar.zst")); code != exitFailed || !strings.Contains(errs, "nope.tar.zst") {
			t.Fatalf("verify of a missing file: exit %d, %s", code, errs)
		}
	})
}

// TestVerifyUnservableTree: verify reports a bundle whose publish tree
// import would refuse (a colon in a path), with a hint, and exits non-zero.
func TestVerifyUnservableTree(t *testing.T) {
	dir := t.TempDir()
	key := bndKey(t, 1)
	pub := filepath.Join(dir, "operator.pub")
	if err := os.WriteFile(pub, key.Public().File(), 0o644); err != nil {
		t.Fatal(err)
	}
	w, _ := bndWriteAt(t, filepath.Join(dir, "w"), key, time.Now().Add(time.Hour), bundle.Options{}, "tools/p%d-2026-01-01T00:00:00Z.tar.gz")
	code, out, errs := bndRun("verify", "--pub", pub, w.Paths[0])
	if code == exitOK || strings.HasPrefix(out, "OK") || !strings.Contains(errs, "cannot be served") || !strings.Contains(errs, "import refuses") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}

func TestVerifyExpired(t *testing.T) {
	f := newBndFixture(t, time.Now().Add(-time.Hour))
	pub := filepath.Join(f.dir, "operator.pub")
	code, out, errs := bndRun("verify", "--pub", pub, f.whole)
	if code != exitFailed || !strings.Contains(errs, "expired") {
		t.Fatalf("expired bundle: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = bndRun("verify", "--pub", pub, f.whole, "--allow-expired")
	if code != exitOK || !strings.HasPrefix(out, "OK ") {
		t.Fatalf("expired bundle with --allow-expired: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestInspectCommand(t *testing.T) {
	f := newBndFixture(t, time.Now().Add(72*time.Hour))
	code, out, errs := bndRun("inspect", f.whole)
	t.Logf("inspect output:\n%s", out)
	if code != exitOK || !strings.Contains(errs, "signature not checked") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"sequence:  4 (full)", "id:        " + f.m.ID, "signer:    operator key " + bndKey(t, 1).Public().ID.String(),
		"expires in ", "tools (files) https://example.org/", "packages:  3 (", "tools:p2 1.2  68.4 KiB", "blobs:     3 carried",
		"rejected:  1", "tools:evil: out of scope", `"release\u200b"`} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\u200b") {
		t.Errorf("inspect printed a raw invisible character from the bundle")
	}
	// --json after the bundle, as the contract writes it, on the parts.
	code, out, errs = bndRun("inspect", strings.TrimSuffix(f.parts[0], ".part-001"), "--json")
	if code != exitOK {
		t.Fatalf("inspect --json: exit %d, %s", code, errs)
	}
	var m bundle.Manifest
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("inspect --json output: %v\n%s", err, out)
	}
	if m.ID == "" || m.Sequence != 4 || len(m.Packages) != 3 || m.Packages[2].Size != 70000 || m.OperatorKeyID != bndKey(t, 1).Public().ID.String() {
		t.Fatalf("inspect --json manifest: %+v", m)
	}
	if !strings.Contains(errs, "signature not checked") {
		t.Fatalf("inspect --json does not warn on stderr that nothing was checked: %q", errs)
	}
	if code, _, _ := bndRun("inspect"); code != exitUsage {
		t.Fatalf("inspect without a bundle: exit %d, want 2", code)
	}
	if code, _, errs := bndRun("inspect", f.whole, "--bogus"); code != exitUsage {
		t.Fatalf("inspect with an unknown late flag: exit %d, want 2 (%s)", code, errs)
	}
	if code, _, errs := bndRun("inspect", f.parts[0]); code != exitFailed || !strings.Contains(errs, "missing") {
		t.Fatalf("inspect of one part of several: exit %d, %s", code, errs)
	}
}
