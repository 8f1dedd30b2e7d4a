package mirror

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// leftPartials lists the files under a state folder's partial folder.
func leftPartials(t *testing.T, state string) []string {
	t.Helper()
	var left []string
	err := filepath.WalkDir(filepath.Join(state, PartialDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return left
}

// TestPartialLayout: partials go to 256 subfolders; what an earlier layout
// left at the top of the folder is removed, partials of this layout stay
// (they are resumed).
func TestPartialLayout(t *testing.T) {
	dir := t.TempDir()
	old := strings.Repeat("ab", 20)
	for _, name := range []string{old, old + ".fetch", "stray"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "zz", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &run{partial: dir}
	p := r.partialFor("https://example.org/a.tar.gz")
	if filepath.Dir(filepath.Dir(p)) != dir || len(filepath.Base(filepath.Dir(p))) != 2 || len(filepath.Base(p)) != 38 {
		t.Fatalf("partialFor = %s", p)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("resume me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := makePartialDirs(dir); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 256 {
		t.Fatalf("%d entries in the partial folder, want 256 subfolders", len(ents))
	}
	for _, e := range ents {
		if !e.IsDir() || len(e.Name()) != 2 {
			t.Fatalf("unexpected %s", e.Name())
		}
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "resume me" {
		t.Fatalf("a partial of this layout was lost: %q, %v", b, err)
	}
	if err := makePartialDirs(dir); err != nil {
		t.Fatalf("second call: %v", err)
	}
}
