package apt

import (
	"os"
	"path/filepath"
	"testing"
)

// Fuzz targets for the upstream's apt metadata (issue 7: every parser of
// untrusted input is fuzzed). Seeds are the fixture archive's real files
// made by apt-ftparchive; each target asserts its seeds exist.

func aptSeeds(f *testing.F, globs ...string) int {
	f.Helper()
	n := 0
	for _, g := range globs {
		names, err := filepath.Glob(filepath.Join("..", "..", "..", "fixtures", "apt", "repo", g))
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			n++
		}
	}
	if n == 0 {
		f.Fatalf("no seeds for %v", globs)
	}
	return n
}

// FuzzAptPackages: every accepted package has a clean Filename, a size and
// a SHA-256; nothing is returned on error.
func FuzzAptPackages(f *testing.F) {
	aptSeeds(f, "dists/*/main/binary-*/Packages")
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParsePackages(data)
		if err != nil {
			if pkgs != nil {
				t.Fatal("packages returned with an error")
			}
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.Size < 0 || !isHex64(p.SHA256) {
				t.Fatalf("incomplete package %+v", p)
			}
			if c, err := CleanPath(p.Filename); err != nil || c != p.Filename {
				t.Fatalf("package %s: Filename %q accepted but not clean (%v)", p.Name, p.Filename, err)
			}
		}
	})
}

// FuzzAptRelease: an accepted release names a suite or codename and lists
// only clean paths with SHA-256 sums.
func FuzzAptRelease(f *testing.F) {
	aptSeeds(f, "dists/*/Release")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRelease(data)
		if err != nil {
			if r != nil {
				t.Fatal("release returned with an error")
			}
			return
		}
		if r.Suite == "" && r.Codename == "" {
			t.Fatal("release without suite and codename")
		}
		for p, fs := range r.Files {
			if c, err := CleanPath(p); err != nil || c != p {
				t.Fatalf("release lists unclean path %q (%v)", p, err)
			}
			if !isHex64(fs.SHA256) || fs.Size < 0 {
				t.Fatalf("release entry %q: %+v", p, fs)
			}
		}
	})
}

// FuzzAptRelations: the Depends/Pre-Depends/Provides parser returns
// nothing on error, and every relation it accepts has a name and a known
// operator (the closure trusts both).
func FuzzAptRelations(f *testing.F) {
	for _, s := range []string{"libc6 (>= 2.36), libgreet1 (= 1.0-1) | greet-data-alt", "mail-transport-agent", "foo:any (<< 2~), bar [amd64]", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		groups, err := ParseRelations(s)
		if err != nil {
			if groups != nil {
				t.Fatal("relations returned with an error")
			}
			return
		}
		for _, g := range groups {
			if len(g) == 0 {
				t.Fatal("empty alternative group")
			}
			for _, r := range g {
				switch r.Op {
				case "", "<<", "<=", "=", ">=", ">>":
				default:
					t.Fatalf("relation %+v with unknown operator", r)
				}
				if r.Name == "" || (r.Op != "" && r.Version == "") {
					t.Fatalf("incomplete relation %+v from %q", r, s)
				}
			}
		}
	})
}
