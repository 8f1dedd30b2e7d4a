package verify

import (
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// Limits on globs and package names.
const (
	MaxGlobLength    = 256
	MaxPackageLength = 1024
)

// A glob matches package names "source:package". Its syntax is path.Match's
// ('*' any run of characters except '/', '?' one character except '/',
// '[...]' a class, '\\' an escape) plus '**', any run of characters
// including '/'. The pattern "*" on its own matches every package.
type glob string

func parseGlob(p string) (glob, error) {
	if p == "" {
		return "", fmt.Errorf("empty glob; write \"source:package\" patterns such as \"tools:hello/*\"")
	}
	if len(p) > MaxGlobLength {
		return "", fmt.Errorf("glob %.40q... is longer than %d bytes", p, MaxGlobLength)
	}
	if _, err := path.Match(strings.ReplaceAll(p, "**", "*"), ""); err != nil {
		return "", fmt.Errorf("glob %q: %v", p, err)
	}
	if p != "*" && p != "**" && !strings.Contains(p, ":") {
		return "", fmt.Errorf("glob %q has no \"source:\" part; write \"source:package\" (or \"*\" for everything)", p)
	}
	return glob(p), nil
}

// match reports whether name matches g. It runs in time proportional to
// len(g)*len(name) (memoized), so hostile names cannot make it blow up.
func (g glob) match(name string) bool {
	if g == "*" {
		return true
	}
	if !strings.Contains(string(g), "**") && !strings.Contains(string(g), "[") {
		// path.Match has the same meaning here and allocates nothing.
		ok, _ := path.Match(string(g), name)
		return ok
	}
	return g.matchSlow(name)
}

// matchSlow is the general matcher (memoized backtracking).
func (g glob) matchSlow(name string) bool {
	p := string(g)
	memo := make([]int8, (len(p)+1)*(len(name)+1)) // 0 unknown, 1 yes, 2 no
	var m func(pi, si int) bool
	m = func(pi, si int) bool {
		k := pi*(len(name)+1) + si
		if memo[k] != 0 {
			return memo[k] == 1
		}
		r := matchAt(p, name, pi, si, m)
		memo[k] = 2
		if r {
			memo[k] = 1
		}
		return r
	}
	return m(0, 0)
}

func matchAt(p, s string, pi, si int, m func(int, int) bool) bool {
	if pi == len(p) {
		return si == len(s)
	}
	if strings.HasPrefix(p[pi:], "**") {
		next := pi
		for next < len(p) && p[next] == '*' {
			next++
		}
		for i := si; i <= len(s); i++ {
			if m(next, i) {
				return true
			}
		}
		return false
	}
	if p[pi] == '*' {
		for i := si; i <= len(s); i++ {
			if m(pi+1, i) {
				return true
			}
			if i < len(s) && s[i] == '/' {
				return false
			}
		}
		return false
	}
	if si == len(s) {
		return false
	}
	// One element of the pattern against one rune of s.
	end := elementEnd(p, pi)
	r, size := utf8.DecodeRuneInString(s[si:])
	if r == '/' && p[pi] != '/' && !(p[pi] == '\\' && end-pi == 2 && p[pi+1] == '/') {
		return false
	}
	ok, err := path.Match(p[pi:end], s[si:si+size])
	if err != nil || !ok {
		return false
	}
	return m(end, si+size)
}

// elementEnd returns the end of the pattern element starting at i: one
// (possibly escaped) character or a whole [...] class.
func elementEnd(p string, i int) int {
	switch p[i] {
	case '\\':
		if i+1 < len(p) {
			_, size := utf8.DecodeRuneInString(p[i+1:])
			return i + 1 + size
		}
		return i + 1
	case '[':
		j := i + 1
		if j < len(p) && p[j] == '^' {
			j++
		}
		for first := true; j < len(p); first = false {
			switch {
			case p[j] == ']' && !first:
				return j + 1
			case p[j] == '\\' && j+1 < len(p):
				j += 2
			default:
				j++
			}
		}
		return len(p)
	}
	_, size := utf8.DecodeRuneInString(p[i:])
	return i + size
}

// checkPackage validates a package name "source:name".
func checkPackage(pkg string) error {
	src, name, ok := strings.Cut(pkg, ":")
	switch {
	case len(pkg) > MaxPackageLength:
		return fmt.Errorf("%w: package name longer than %d bytes", ErrMalformed, MaxPackageLength)
	case !ok || src == "" || name == "":
		return fmt.Errorf("%w: package %q is not \"source:name\"", ErrMalformed, pkg)
	case !utf8.ValidString(pkg):
		return fmt.Errorf("%w: package %q is not UTF-8", ErrMalformed, pkg)
	}
	return nil
}
