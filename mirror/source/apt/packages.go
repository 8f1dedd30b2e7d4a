package apt

import (
	"fmt"
	"strconv"
	"strings"
)

// Package is one binary package paragraph of a Packages index.
type Package struct {
	Name         string
	Version      string
	Architecture string
	// Filename is the .deb's path under the archive root (checked clean).
	Filename string
	Size     int64
	SHA256   string
	// Depends, PreDepends and Provides parsed (Provides: one relation per
	// alternative group).
	Depends    [][]Relation
	PreDepends [][]Relation
	Provides   []Relation
	// Paragraph is the whole stanza, republished byte for byte.
	Paragraph Paragraph
}

// Relation is one "name [:arch] [(op version)]" of a dependency field.
type Relation struct {
	Name string
	Arch string // "any", "native", an architecture, or ""
	// Op is one of "<<", "<=", "=", ">=", ">>", or "" (any version).
	Op      string
	Version string
}

// String formats the relation as in a control file.
func (r Relation) String() string {
	s := r.Name
	if r.Arch != "" {
		s += ":" + r.Arch
	}
	if r.Op != "" {
		s += " (" + r.Op + " " + r.Version + ")"
	}
	return s
}

// Satisfies reports whether a version v satisfies the relation's
// constraint.
func (r Relation) Satisfies(v string) bool {
	if r.Op == "" {
		return true
	}
	c := CompareVersions(v, r.Version)
	switch r.Op {
	case "<<":
		return c < 0
	case "<=":
		return c <= 0
	case "=":
		return c == 0
	case ">=":
		return c >= 0
	case ">>":
		return c > 0
	}
	return false
}

// ParsePackages parses a Packages index. Every paragraph must have
// Package, Version, Architecture, Filename (a clean relative path), Size
// and a 64-hex-digit SHA256; relations must parse. On error nothing is
// returned.
func ParsePackages(data []byte) ([]Package, error) {
	ps, err := ParseControl(data)
	if err != nil {
		return nil, err
	}
	out := make([]Package, 0, len(ps))
	for i := range ps {
		p, err := packageOf(ps[i])
		if err != nil {
			return nil, fmt.Errorf("paragraph %d: %w", i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func packageOf(par Paragraph) (Package, error) {
	p := Package{Paragraph: par}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"Package", &p.Name}, {"Version", &p.Version}, {"Architecture", &p.Architecture}, {"Filename", &p.Filename}, {"SHA256", &p.SHA256}} {
		v, ok := par.Get(f.name)
		if !ok || v == "" || strings.ContainsAny(v, "\n \t") {
			return Package{}, fmt.Errorf("%w: missing or malformed %s field", ErrControl, f.name)
		}
		*f.dst = v
	}
	if !isName(p.Name) {
		return Package{}, fmt.Errorf("%w: package name %q", ErrControl, p.Name)
	}
	if !isHex64(p.SHA256) {
		return Package{}, fmt.Errorf("%w: package %s: SHA256 %q is not 64 lower-case hex digits", ErrControl, p.Name, p.SHA256)
	}
	if _, err := CleanPath(p.Filename); err != nil {
		return Package{}, fmt.Errorf("package %s: Filename: %w", p.Name, err)
	}
	sz, err := strconv.ParseInt(par.Value("Size"), 10, 64)
	if err != nil || sz < 0 {
		return Package{}, fmt.Errorf("%w: package %s: Size %q", ErrControl, p.Name, par.Value("Size"))
	}
	p.Size = sz
	if p.Depends, err = ParseRelations(par.Value("Depends")); err != nil {
		return Package{}, fmt.Errorf("package %s: Depends: %w", p.Name, err)
	}
	if p.PreDepends, err = ParseRelations(par.Value("Pre-Depends")); err != nil {
		return Package{}, fmt.Errorf("package %s: Pre-Depends: %w", p.Name, err)
	}
	prov, err := ParseRelations(par.Value("Provides"))
	if err != nil {
		return Package{}, fmt.Errorf("package %s: Provides: %w", p.Name, err)
	}
	for _, g := range prov {
		if len(g) != 1 {
			return Package{}, fmt.Errorf("%w: package %s: Provides with alternatives", ErrControl, p.Name)
		}
		p.Provides = append(p.Provides, g[0])
	}
	return p, nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseRelations parses a Depends-like field: groups separated by ',',
// alternatives by '|', each "name[:arch] [(op version)] [<profiles>]
// [[arch-list]]". Architecture restrictions in brackets and build
// profiles (only in source packages) are refused.
func ParseRelations(s string) ([][]Relation, error) {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "\t", " ")
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	groups := strings.Split(s, ",")
	if len(groups) > MaxRelations {
		return nil, fmt.Errorf("%w: more than %d relations", ErrLimit, MaxRelations)
	}
	out := make([][]Relation, 0, len(groups))
	n := 0
	for _, g := range groups {
		var alts []Relation
		for _, a := range strings.Split(g, "|") {
			if n++; n > MaxRelations {
				return nil, fmt.Errorf("%w: more than %d relations", ErrLimit, MaxRelations)
			}
			r, err := parseRelation(strings.TrimSpace(a))
			if err != nil {
				return nil, err
			}
			alts = append(alts, r)
		}
		out = append(out, alts)
	}
	return out, nil
}

var ops = []string{"<<", "<=", ">=", ">>", "=", "<", ">"}

func parseRelation(s string) (Relation, error) {
	var r Relation
	name := s
	rest := ""
	if i := strings.IndexAny(s, " ("); i >= 0 {
		name, rest = s[:i], strings.TrimSpace(s[i:])
	}
	if n, arch, ok := strings.Cut(name, ":"); ok {
		if !archRe.MatchString(arch) {
			return r, fmt.Errorf("%w: relation %q: architecture qualifier", ErrControl, s)
		}
		name, r.Arch = n, arch
	}
	if !isName(name) {
		return r, fmt.Errorf("%w: relation %q: package name", ErrControl, s)
	}
	r.Name = name
	if rest == "" {
		return r, nil
	}
	if rest[0] != '(' || rest[len(rest)-1] != ')' {
		return r, fmt.Errorf("%w: relation %q: want \"name (op version)\"", ErrControl, s)
	}
	in := strings.TrimSpace(rest[1 : len(rest)-1])
	for _, op := range ops {
		if strings.HasPrefix(in, op) {
			r.Op = op
			r.Version = strings.TrimSpace(in[len(op):])
			break
		}
	}
	// "<" and ">" are obsolete spellings of "<=" and ">=".
	switch r.Op {
	case "<":
		r.Op = "<="
	case ">":
		r.Op = ">="
	}
	if r.Op == "" || r.Version == "" || strings.ContainsAny(r.Version, " ()") {
		return r, fmt.Errorf("%w: relation %q: version constraint", ErrControl, s)
	}
	return r, nil
}
