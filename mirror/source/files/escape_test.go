package files

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// escapeSlow is escapePath without its fast path: each element through
// url.PathEscape.
func escapeSlow(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// FuzzEscapePath: escapePath (which returns a path of plain bytes as it is)
// escapes exactly as url.PathEscape element by element.
func FuzzEscapePath(f *testing.F) {
	seeds := []string{"p/f000001.tgz", "a b/c", "a%2Fb", "x?y#z", "é/ü", "a;b,c", "~user/.hidden-_", "", "/", "a//b", "a+b=c&d$e:f@g", "\x00\x7f"}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if got, want := escapePath(p), escapeSlow(p); got != want {
			t.Errorf("escapePath(%q) = %q, want %q", p, got, want)
		}
	})
}

// cleanElementsSlow is CleanPath's element check as strings.Split does it.
func cleanElementsSlow(p string) string {
	for _, e := range strings.Split(p, "/") {
		switch e {
		case "":
			return "empty element"
		case ".":
			return `"." element`
		case "..":
			return `".." element`
		}
	}
	return ""
}

// FuzzCleanPathElements: CleanPath (which walks the elements without
// splitting the path) refuses exactly the paths with an empty, "." or ".."
// element that pass its other checks, with the same reason.
func FuzzCleanPathElements(f *testing.F) {
	seeds := []string{"a/b", "a//b", "a/", "./a", "a/.", "../a", "a/../b", "a/.../b", "..", ".", "a", "a/b/c/d"}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if p == "" || len(p) > MaxPathLen || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") || !utf8Clean(p) {
			return
		}
		got, err := CleanPath(p)
		why := cleanElementsSlow(p)
		switch {
		case why == "" && (err != nil || got != p):
			t.Errorf("CleanPath(%q) = %q, %v; want it unchanged", p, got, err)
		case why != "" && (err == nil || !strings.Contains(err.Error(), why) || got != ""):
			t.Errorf("CleanPath(%q) = %q, %v; want the error %q", p, got, err, why)
		}
	})
}

// utf8Clean: valid UTF-8 without control characters (CleanPath's other
// refusals).
func utf8Clean(p string) bool {
	for _, r := range p {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return false
		}
	}
	return true
}
