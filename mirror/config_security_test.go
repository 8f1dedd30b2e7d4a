package mirror

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParseConfig fuzzes the mirror.toml loader (issue 7). Seeds: the demo's
// real configuration and the examples the config tests use. Properties: no
// panic; nothing is returned on error; an accepted configuration has
// positive jobs, valid source names each with its type's table, paths
// resolved to absolute ones, and decoding is deterministic.
func FuzzParseConfig(f *testing.F) {
	demo, err := os.ReadFile(filepath.Join("..", "fixtures", "demo", "mirror.toml"))
	if err != nil || len(demo) == 0 {
		f.Fatalf("seed fixtures/demo/mirror.toml: %v", err)
	}
	// scripts/demo fills in the loopback upstream's address.
	demo = bytes.ReplaceAll(demo, []byte("UPSTREAM_URL"), []byte("http://127.0.0.1:8080/"))
	file := filepath.Join(f.TempDir(), "mirror.toml")
	for _, s := range [][]byte{demo, []byte(exampleConfig), []byte(minimalConfig)} {
		if _, err := ParseConfig(file, s); err != nil {
			f.Fatalf("seed does not parse: %v", err) // the success path must be reachable
		}
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseConfig(file, raw)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		if c.Jobs < 1 {
			t.Fatalf("jobs = %d", c.Jobs)
		}
		for _, p := range []string{c.Output.Dir, c.Output.State} {
			if !filepath.IsAbs(p) {
				t.Fatalf("output path %q is not absolute", p)
			}
		}
		seen := map[string]bool{}
		for _, s := range c.Sources {
			if !sourceName.MatchString(s.Name) || seen[s.Name] {
				t.Fatalf("source name %q accepted (duplicate: %v)", s.Name, seen[s.Name])
			}
			seen[s.Name] = true
			if s.Type == "files" && s.Files == nil {
				t.Fatalf("files source %q without its table", s.Name)
			}
		}
		again, err := ParseConfig(file, raw)
		if err != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}
