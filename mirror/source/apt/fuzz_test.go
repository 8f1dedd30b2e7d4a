package apt

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

// controlSeeds are the fixture archive's real Release and Packages files.
func controlSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	root := filepath.Join(fixtures(t), "repo", "dists")
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (d.Name() == "Release" || d.Name() == "Packages" || d.Name() == "Sources") {
			if b, err := os.ReadFile(p); err == nil {
				seeds = append(seeds, b)
			}
		}
		return nil
	})
	return seeds
}

// FuzzParseControl: ParseControl, ParsePackages, ParseSources and
// ParseRelease never
// panic, return nothing with an error, and parsed paragraphs survive a
// Marshal / ParseControl round trip.
func FuzzParseControl(f *testing.F) {
	seeds := controlSeeds(f)
	if len(seeds) < 9 {
		f.Fatalf("only %d seeds from fixtures/apt; run scripts/gen-apt-fixtures", len(seeds))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte("A: 1\n b\n .\n\nB:\n c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParseControl(data)
		if err != nil {
			if ps != nil {
				t.Fatal("paragraphs returned with an error")
			}
		} else {
			back, err := ParseControl(MarshalControl(ps))
			if err != nil {
				t.Fatalf("re-parse of marshalled paragraphs: %v", err)
			}
			if len(back) != len(ps) {
				t.Fatalf("round trip: %d paragraphs, want %d", len(back), len(ps))
			}
			for i := range ps {
				if !reflect.DeepEqual(back[i].Fields, ps[i].Fields) {
					t.Fatalf("round trip of paragraph %d: %q != %q", i, back[i].Fields, ps[i].Fields)
				}
				if !bytes.HasPrefix(data[bytes.Index(data, ps[i].Raw):], ps[i].Raw) {
					t.Fatal("Raw is not a slice of the input")
				}
			}
		}
		if pkgs, err := ParsePackages(data); err != nil && pkgs != nil {
			t.Fatal("packages returned with an error")
		} else if err == nil {
			for _, p := range pkgs {
				if _, err := CleanPath(p.Filename); err != nil || !isHex64(p.SHA256) || p.Size < 0 {
					t.Fatalf("accepted package %+v", p)
				}
			}
		}
		if srcs, err := ParseSources(data); err != nil && srcs != nil {
			t.Fatal("sources returned with an error")
		} else if err == nil {
			for _, s := range srcs {
				for _, f := range s.Files {
					if _, err := CleanPath(s.Path(f)); err != nil || !isHex64(f.SHA256) {
						t.Fatalf("accepted source file %+v", f)
					}
				}
			}
		}
		if r, err := ParseRelease(data); err != nil && r != nil {
			t.Fatal("release returned with an error")
		}
	})
}

// FuzzCompareVersions: an order (antisymmetric, reflexive).
func FuzzCompareVersions(f *testing.F) {
	for _, p := range versionPairs {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if CompareVersions(a, b) != -CompareVersions(b, a) || CompareVersions(a, a) != 0 {
			t.Fatalf("%q %q: not antisymmetric", a, b)
		}
	})
}

// FuzzIsName: isName is Debian policy's name syntax, as the regular
// expression ^[a-z0-9][a-z0-9+.-]+$ states it.
func FuzzIsName(f *testing.F) {
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	for _, s := range []string{"hello", "a", "libc6", "g++", "-x", "x-", "A", "lib.so.1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if isName(s) != re.MatchString(s) {
			t.Fatalf("%q: isName %v, regexp %v", s, isName(s), re.MatchString(s))
		}
	})
}
