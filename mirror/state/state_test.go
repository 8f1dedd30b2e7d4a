package state

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sum(c byte) string { return strings.Repeat(string(c), 64) }

func TestLoadMissingIsFresh(t *testing.T) {
	s, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if s.Sequence != 0 || len(s.Shipped) != 0 {
		t.Fatalf("fresh state = %+v", s)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := New()
	s.Record(1, []string{sum('a'), sum('b')})
	s.Record(2, []string{sum('b'), sum('c')})
	s.Upstreams["http://x/a"] = Upstream{SHA256: sum('a'), Size: 3, ETag: `"e"`}
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	if got.Shipped[sum('b')] != 1 || got.Shipped[sum('c')] != 2 || got.Sequence != 2 {
		t.Fatalf("Record kept the wrong sequences: %+v", got.Shipped)
	}
	if m := got.Missing([]string{sum('c'), sum('d'), sum('d'), sum('a')}); !reflect.DeepEqual(m, []string{sum('d')}) {
		t.Fatalf("Missing = %v", m)
	}
}

func TestCloneIsDeep(t *testing.T) {
	s := New()
	s.Record(1, []string{sum('a')})
	c := s.Clone()
	c.Record(2, []string{sum('b')})
	c.Upstreams["u"] = Upstream{}
	if s.Sequence != 1 || len(s.Shipped) != 1 || len(s.Upstreams) != 0 {
		t.Fatalf("clone changed the original: %+v", s)
	}
}

func TestLoadRejectsCorrupt(t *testing.T) {
	for name, body := range map[string]string{
		"not json":        "{",
		"future sequence": `{"format":"` + FormatV1 + `","sequence":1,"shipped":{"` + sum('a') + `":2}}`,
		"bad sum":         `{"format":"` + FormatV1 + `","sequence":1,"shipped":{"zz":1}}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, V1FileName), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if s, err := Load(dir); !errors.Is(err, ErrCorrupt) || s != nil {
			t.Errorf("%s: Load = %v, %v; want ErrCorrupt", name, s, err)
		}
	}
}

func TestCloneShipped(t *testing.T) {
	s := New()
	s.Record(1, []string{sum('a')})
	s.Bundle, s.Digest = "b", "d"
	s.Upstreams["u"] = Upstream{SHA256: sum('a')}
	s.Verified["v"] = Verified{File: sum('a')}
	c := s.CloneShipped()
	c.Record(2, []string{sum('b')})
	if s.Sequence != 1 || len(s.Shipped) != 1 || len(s.Upstreams) != 1 || len(s.Verified) != 1 {
		t.Fatalf("clone changed the original: %+v", s)
	}
	if c.Bundle != "b" || c.Digest != "d" || c.Format != s.Format || len(c.Shipped) != 2 || c.Shipped[sum('a')] != 1 || len(c.Upstreams) != 0 || len(c.Verified) != 0 || c.Upstreams == nil || c.Verified == nil {
		t.Fatalf("CloneShipped = %+v", c)
	}
}

// TestLoadPrefersNewFile: after a crash between writing FileName and
// removing the v1 file both exist, and the newer one (FileName) is read;
// the next Save removes the v1 file.
func TestLoadPrefersNewFile(t *testing.T) {
	dir := t.TempDir()
	old := `{"format":"` + FormatV1 + `","sequence":1,"shipped":{"` + sum('a') + `":1}}`
	if err := os.WriteFile(filepath.Join(dir, V1FileName), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Load(dir); err != nil || s.Sequence != 1 {
		t.Fatalf("v1 file alone: %+v, %v", s, err)
	}
	s := New()
	s.Record(2, []string{sum('b')})
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil || got.Sequence != 2 {
		t.Fatalf("both files: loaded sequence %+v, %v; want 2 (the new file)", got, err)
	}
	if err := got.Save(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, V1FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Save left the v1 file: %v", err)
	}
}
