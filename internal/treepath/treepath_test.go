package treepath

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestSet: each kind of collision is found and names both paths; an Add is
// all or none.
func TestSet(t *testing.T) {
	for _, c := range []struct {
		before, paths []string
		kind          Kind
		with          string
	}{
		{[]string{"a/b"}, []string{"a/b"}, Twice, "a/b"},
		{[]string{"README"}, []string{"readme"}, CaseVariant, "README"},
		{[]string{"pkg/k"}, []string{"pkg/\u212a"}, CaseVariant, "pkg/k"},              // Kelvin sign
		{[]string{"SUM"}, []string{"\u017fum"}, CaseVariant, "SUM"},                    // long s
		{[]string{"\u03c3"}, []string{"\u03c2"}, CaseVariant, "\u03c3"},                // final sigma
		{[]string{"caf\u00e9/x"}, []string{"CAF\u00c9/x"}, CaseVariant, "caf\u00e9/x"}, // é
		{[]string{"d/a"}, []string{"D"}, IsFolder, "d/a"},
		{[]string{"d/a"}, []string{"d/A/b"}, InFile, "d/a"},
		{nil, []string{"x", "y", "X"}, CaseVariant, "x"},
	} {
		s := NewSet(0)
		if err := s.Add(c.before...); err != nil {
			t.Fatal(err)
		}
		var clash *Clash
		err := s.Add(c.paths...)
		if !errors.As(err, &clash) || clash.Kind != c.kind || clash.With != c.with || !strings.Contains(clash.Reason(), c.with) && c.kind != Twice {
			t.Errorf("after %q, Add(%q) = %v (%+v), want kind %d with %q", c.before, c.paths, err, clash, c.kind, c.with)
			continue
		}
		// All or none: the paths of the refused Add before the clash
		// were taken back.
		for _, p := range c.paths[:len(c.paths)-1] {
			if err := s.Add(p); err != nil {
				t.Errorf("after %q, a refused Add(%q) kept %q: %v", c.before, c.paths, p, err)
			}
		}
	}
	for _, ok := range [][]string{
		{"stra\u00dfe", "STRASSE"}, // ß is not "SS" under simple folding
		{"\u0130", "i"},            // nor is dotted capital I
		{"a/b", "a/c", "ab"},
	} {
		if err := NewSet(0).Add(ok...); err != nil {
			t.Errorf("Add(%q) = %v, want no clash", ok, err)
		}
	}
	s := NewSet(0)
	s.Repeats = true
	if err := s.Add("d/a", "d/a"); err != nil {
		t.Errorf("a repeat with Repeats: %v", err)
	}
}

// FuzzFold: two valid UTF-8 paths have one key exactly when
// strings.EqualFold holds.
func FuzzFold(f *testing.F) {
	for _, s := range [][2]string{{"K", "\u212a"}, {"s", "\u017f"}, {"\u03c3", "\u03a3"}, {"a/B", "A/b"}, {"\u0130", "i"}, {"x", "y"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			return
		}
		if same, fold := Fold(a) == Fold(b), strings.EqualFold(a, b); same != fold {
			t.Fatalf("%q, %q: same key %v, EqualFold %v", a, b, same, fold)
		}
	})
}
