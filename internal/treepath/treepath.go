// Package treepath finds the paths that cannot share one published tree:
// the same path twice, two paths that a case-insensitive file system takes
// for one name, a file that is also a folder of another, a file inside a
// file. The bundle reader (bundle.Manifest.Validate) and the repository
// (repo.CheckTree, and sync's per-package guard) use this one Set, so that
// the format and the repository agree on what collides.
//
// Paths are clean and relative (the callers check that first).
package treepath

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kind is how a path collides.
type Kind int

const (
	Twice       Kind = iota + 1 // the same path again
	CaseVariant                 // equal to another when case is ignored
	IsFolder                    // a folder of a file added before
	InFile                      // inside a file added before
)

// Clash is the first collision an Add found: Path collides with With.
type Clash struct {
	Path string
	With string
	Kind Kind
}

// Reason says how Path collides, naming the other path (quoted, and cut
// after 100 bytes).
func (c *Clash) Reason() string {
	with := c.With
	if len(with) > 100 {
		with = with[:100] + "..."
	}
	switch c.Kind {
	case Twice:
		return "comes twice"
	case CaseVariant:
		return "collides with " + strconv.Quote(with) + " when case is ignored"
	case IsFolder:
		return "is also a folder of " + strconv.Quote(with)
	default:
		return "is inside the file " + strconv.Quote(with)
	}
}

func (c *Clash) Error() string { return "path " + strconv.Quote(c.Path) + " " + c.Reason() }

// Set holds the paths added so far, by their folded form.
type Set struct {
	// Repeats lets a path be added again (sync: a signature that several
	// packages share); by default a repeat is a Twice clash.
	Repeats bool
	seen    map[string]node
	added   []string // keys the Add under way put, to take back
}

// node is a folded path: a file, or a folder and the first file that made it.
type node struct {
	path   string
	folder bool
}

// NewSet makes a Set with room for about n paths.
func NewSet(n int) *Set {
	return &Set{seen: make(map[string]node, n+8)}
}

// Add adds paths, all or none. It returns nil or the *Clash of the first
// path that collides with one added before (or earlier in this call).
func (s *Set) Add(paths ...string) error {
	s.added = s.added[:0]
	for _, p := range paths {
		if c := s.add(p); c != nil {
			for _, k := range s.added {
				delete(s.seen, k)
			}
			return c
		}
	}
	return nil
}

func (s *Set) add(p string) *Clash {
	k := Fold(p)
	if prev, ok := s.seen[k]; ok {
		switch {
		case prev.folder:
			return &Clash{Path: p, With: prev.path, Kind: IsFolder}
		case prev.path != p:
			return &Clash{Path: p, With: prev.path, Kind: CaseVariant}
		case !s.Repeats:
			return &Clash{Path: p, With: prev.path, Kind: Twice}
		}
		return nil
	}
	for d := parent(k); d != ""; d = parent(d) {
		if prev, ok := s.seen[d]; ok {
			if !prev.folder {
				return &Clash{Path: p, With: prev.path, Kind: InFile}
			}
			break // a folder already: so are its parents
		}
	}
	s.seen[k] = node{path: p}
	s.added = append(s.added, k)
	for d := parent(k); d != ""; d = parent(d) {
		if _, ok := s.seen[d]; ok {
			break
		}
		s.seen[d] = node{path: p, folder: true}
		s.added = append(s.added, d)
	}
	return nil
}

// parent is the folder of a clean relative path, "" at the top.
func parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return ""
}

// Fold maps the paths that a case-insensitive file system takes for one
// name to one key: each letter to a name of its Unicode simple case
// folding orbit, so that two paths have one key exactly when
// strings.EqualFold holds. Lower-casing alone keeps apart names that such
// systems join (the Kelvin sign and K, long s and S, final and medial
// sigma). An orbit holding an ASCII letter maps to that letter's lower
// case, so an ASCII path's key is strings.ToLower's, which allocates
// nothing for a path already in lower case.
func Fold(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] >= utf8.RuneSelf {
			return strings.Map(foldRune, p)
		}
	}
	return strings.ToLower(p)
}

// foldRune names r's simple case folding orbit: its least rune, or the
// lower case of the ASCII letter in it (which is the least).
func foldRune(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	if 'A' <= least && least <= 'Z' {
		return least + 'a' - 'A'
	}
	return least
}
