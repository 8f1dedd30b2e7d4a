package repo_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/mirror-tool/mirror/mirror"
	"github.com/mirror-tool/mirror/mirror/repo"
)

// TestImportErrorAfterSwitch: when writing state.json fails after `current`
// was switched, mirror.Import reports the bundle imported (it is served),
// with a warning, logs it as imported, and returns no error; the next
// import repairs state.json and goes on.
// oneFileBundle writes to dir a full bundle of sequence seq, signed by
// key at now, whose one package tools/a holds content, and returns its
// path.
func oneFileBundle(t *testing.T, dir string, key minisign.PrivateKey, seq uint64, content string, now time.Time) []string {
	t.Helper()
	sum := sha256.Sum256([]byte(content))
	h := hex.EncodeToString(sum[:])
	m := &bundle.Manifest{Sequence: seq, Created: now, Expires: now.Add(24 * time.Hour), ToolVersion: "test",
		Sources:  []bundle.Source{{Name: "tools", Type: "files", URL: "https://example.org/"}},
		Packages: []bundle.Package{{Source: "tools", Name: "a", Version: "1", Path: "tools/a", Size: int64(len(content)), SHA256: h, Keys: []string{"k"}}},
		Tree:     []bundle.Entry{{Path: "tools/a", SHA256: h, Size: int64(len(content))}},
		Blobs:    []bundle.Blob{{SHA256: h, Size: int64(len(content))}}}
	src := func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader([]byte(content))), nil }
	w, err := bundle.Write(context.Background(), dir, fmt.Sprintf("b%d-%s", seq, content), m, key, src, bundle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return w.Paths[:1]
}

func TestImportErrorAfterSwitch(t *testing.T) {
	key, err := minisign.GenerateKey(rand.NewChaCha8([32]byte{'s', 'w'}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	out, dir := t.TempDir(), t.TempDir()
	write := func(seq uint64, content string) []string { return oneFileBundle(t, out, key, seq, content, now) }
	opts := mirror.ImportOptions{Repo: dir, Pub: key.Public(), Now: func() time.Time { return now.Add(time.Hour) }}
	if _, err := mirror.Import(context.Background(), opts, write(1, "one")); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, repo.StateFile)
	repo.SetCheckpointHook(func(step string) {
		if step == "switched" { // state.json can no longer be replaced
			os.Remove(st)
			os.MkdirAll(filepath.Join(st, "x"), 0o755)
		}
	})
	t.Cleanup(func() { repo.SetCheckpointHook(nil) })
	res, err := mirror.Import(context.Background(), opts, write(2, "two"))
	if err != nil || len(res) != 1 || res[0].Result != repo.ResultImported || !strings.Contains(res[0].Warning, "generation 2 is served") {
		t.Fatalf("import with state.json failing after the switch: %+v, %v", res, err)
	}
	if served, err := os.ReadFile(filepath.Join(dir, repo.CurrentLink, "tools/a")); err != nil || string(served) != "two" {
		t.Fatalf("served %q (%v), want generation 2", served, err)
	}
	log, err := repo.ReadLog(dir, 1)
	if err != nil || len(log) != 1 || log[0].Result != repo.ResultImported || !strings.Contains(log[0].Message, "is served, but") {
		t.Fatalf("log %+v (%v)", log, err)
	}
	repo.SetCheckpointHook(nil)
	os.RemoveAll(st)
	if _, err := mirror.Import(context.Background(), opts, write(3, "three")); err != nil {
		t.Fatalf("the next import: %v", err)
	}
	if s, err := repo.ReadState(dir); err != nil || s.Sequence != 3 {
		t.Fatalf("state after the next import: %+v, %v", s, err)
	}
}
