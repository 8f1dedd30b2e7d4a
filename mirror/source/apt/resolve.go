package apt

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Universe is the packages of one suite and architecture (every
// component), indexed as apt sees them: by name and by what they provide.
type Universe struct {
	byName   map[string][]*Package
	provides map[string][]provider
	order    []*Package
}

type provider struct {
	pkg *Package
	rel Relation // the Provides entry (Version set when versioned)
}

// NewUniverse indexes pkgs (pointers into pkgs are kept).
func NewUniverse(pkgs []Package) *Universe {
	u := &Universe{byName: map[string][]*Package{}, provides: map[string][]provider{}}
	for i := range pkgs {
		p := &pkgs[i]
		u.order = append(u.order, p)
		u.byName[p.Name] = append(u.byName[p.Name], p)
		for _, pr := range p.Provides {
			u.provides[pr.Name] = append(u.provides[pr.Name], provider{p, pr})
		}
	}
	for _, l := range u.byName {
		sort.SliceStable(l, func(i, j int) bool { return CompareVersions(l[i].Version, l[j].Version) > 0 })
	}
	for _, l := range u.provides {
		sort.SliceStable(l, func(i, j int) bool { return l[i].pkg.Name < l[j].pkg.Name })
	}
	return u
}

// Unresolved is a name asked for, or a dependency, that the suite cannot
// satisfy.
type Unresolved struct {
	Name   string
	Reason string
}

// Select returns the packages matching patterns (names or path.Match globs;
// none means every package, every version) and, with deps, their
// Pre-Depends and Depends closure: in each group the first alternative
// that can be satisfied is taken (the one apt installs from the upstream),
// even when another alternative was chosen for some other package — the
// highest version of a real package meeting the constraint, else a
// package providing the (virtual) name (by name order when several do).
// The set is then installable by apt whatever subset of it a client asks
// for. Names and dependencies
// that cannot be satisfied are returned as Unresolved. The result is in
// index order.
func (u *Universe) Select(patterns []string, deps bool) ([]*Package, []Unresolved) {
	if len(patterns) == 0 {
		return append([]*Package(nil), u.order...), nil
	}
	chosen := map[*Package]bool{}
	var queue []*Package
	var unres []Unresolved
	take := func(p *Package) {
		if !chosen[p] {
			chosen[p] = true
			queue = append(queue, p)
		}
	}
	for _, pat := range patterns {
		if !strings.ContainsAny(pat, "*?[\\") {
			if l := u.byName[pat]; len(l) > 0 {
				take(l[0])
			} else {
				unres = append(unres, Unresolved{Name: pat, Reason: "not in the suite's Packages indexes for this architecture"})
			}
			continue
		}
		n := 0
		for _, p := range u.order {
			if ok, _ := path.Match(pat, p.Name); ok && u.byName[p.Name][0] == p {
				take(p)
				n++
			}
		}
		if n == 0 {
			unres = append(unres, Unresolved{Name: pat, Reason: "no package of the suite matches this glob for this architecture"})
		}
	}
	for deps && len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, f := range []struct {
			field  string
			groups [][]Relation
		}{{"Pre-Depends", p.PreDepends}, {"Depends", p.Depends}} {
			for _, g := range f.groups {
				if q := u.pick(g); q != nil {
					take(q)
					continue
				}
				unres = append(unres, Unresolved{Name: groupString(g), Reason: fmt.Sprintf("needed by %s %s (%s) but nothing in the suite satisfies it", p.Name, p.Version, f.field)})
			}
		}
	}
	var out []*Package
	for _, p := range u.order {
		if chosen[p] {
			out = append(out, p)
		}
	}
	return out, unres
}

// pick chooses the package for a group: the first alternative that can be
// satisfied.
func (u *Universe) pick(g []Relation) *Package {
	for _, r := range g {
		for _, p := range u.byName[r.Name] {
			if r.Satisfies(p.Version) {
				return p
			}
		}
		for _, pr := range u.provides[r.Name] {
			if providerSatisfies(pr, r) {
				return pr.pkg
			}
		}
	}
	return nil
}

// providerSatisfies: an unversioned Provides satisfies only unversioned
// relations; a versioned one is compared like a real package.
func providerSatisfies(pr provider, r Relation) bool {
	if r.Op == "" {
		return true
	}
	if pr.rel.Op != "=" {
		return false
	}
	return r.Satisfies(pr.rel.Version)
}

func groupString(g []Relation) string {
	s := make([]string, len(g))
	for i, r := range g {
		s[i] = r.String()
	}
	return strings.Join(s, " | ")
}
