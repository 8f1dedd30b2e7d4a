package mirror

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSecurityDocCitesTests keeps docs/SECURITY.md honest: every test it
// cites as `package:TestName` (or FuzzName) must exist as a func in that
// package's test files (any build tag), and the table must cite enough of
// them to be a threat model rather than prose.
func TestSecurityDocCitesTests(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "SECURITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	cite := regexp.MustCompile("`([a-z][a-z0-9/]*):((?:Test|Fuzz)[A-Za-z0-9_]+)")
	found := cite.FindAllStringSubmatch(string(doc), -1)
	if len(found) < 60 {
		t.Fatalf("docs/SECURITY.md cites %d tests; the threat model needs its tests", len(found))
	}
	sources := map[string]string{}
	for _, m := range found {
		pkg, name := m[1], m[2]
		src, ok := sources[pkg]
		if !ok {
			files, err := filepath.Glob(filepath.Join("..", filepath.FromSlash(pkg), "*_test.go"))
			if err != nil || len(files) == 0 {
				t.Errorf("docs/SECURITY.md cites package %s, which has no test files", pkg)
				sources[pkg] = ""
				continue
			}
			var b strings.Builder
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				b.Write(data)
			}
			src = b.String()
			sources[pkg] = src
		}
		if !strings.Contains(src, "\nfunc "+name+"(") {
			t.Errorf("docs/SECURITY.md cites %s:%s, which does not exist", pkg, name)
		}
	}
}
