package apt

import (
	"os"
	"path/filepath"
	"reflect"
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

// FuzzAptControl: nothing is returned on error; what parses marshals to
// text that parses to the same fields.
func FuzzAptControl(f *testing.F) {
	aptSeeds(f, "dists/*/Release", "dists/*/main/binary-*/Packages")
	f.Add([]byte("A: 1\n b\n .\n\nB: 2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParseControl(data)
		if err != nil {
			if ps != nil {
				t.Fatal("paragraphs returned with an error")
			}
			return
		}
		again, err := ParseControl(MarshalControl(ps))
		if err != nil {
			t.Fatalf("marshalled paragraphs do not parse: %v", err)
		}
		if len(again) != len(ps) {
			t.Fatalf("round trip: %d paragraphs, then %d", len(ps), len(again))
		}
		for i := range ps {
			if !reflect.DeepEqual(ps[i].Fields, again[i].Fields) {
				t.Fatalf("paragraph %d round trip:\n%q\n%q", i, ps[i].Fields, again[i].Fields)
			}
		}
	})
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

// FuzzAptVersion: Debian version order from untrusted Version fields is
// antisymmetric and reflexive; the relation parser (Depends fields) returns
// nothing on error.
func FuzzAptVersion(f *testing.F) {
	for _, p := range [][2]string{{"1.0-1", "1.0-2"}, {"1:0.9", "2.0"}, {"1.0~rc1", "1.0"}, {"2.12-1+b1", "2.12-1"}, {"0", "0"}} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, ba := CompareVersions(a, b), CompareVersions(b, a)
		if ab != -ba {
			t.Fatalf("CompareVersions(%q, %q) = %d but reversed %d", a, b, ab, ba)
		}
		if CompareVersions(a, a) != 0 {
			t.Fatalf("CompareVersions(%q, itself) != 0", a)
		}
		if rs, err := ParseRelations(a); err != nil && rs != nil {
			t.Fatal("relations returned with an error")
		}
	})
}
