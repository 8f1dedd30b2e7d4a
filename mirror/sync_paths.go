package mirror

import (
	"fmt"

	"github.com/mirror-tool/mirror/mirror/repo"
	"github.com/mirror-tool/mirror/mirror/source/files"
)

// unpublishable says why a package's file or signatures could not be served
// inside (repo.CheckPath: a colon, a backslash, too long, too deep), or "":
// such a package is refused here, as no import could take a bundle with it.
func unpublishable(p files.Package) string {
	err := repo.CheckPath(p.Path)
	for i := 0; err == nil && i < len(p.Signatures); i++ {
		err = repo.CheckPath(p.Signatures[i].Path)
	}
	if err != nil {
		return fmt.Sprintf("cannot be served inside the gap: %v", err)
	}
	return ""
}

// servable moves the packages of pkgs that could not be served inside
// (unpublishable) to rej, and reports whether the paths of the others clash
// (admitPaths; settleClashes decides, once the state is read).
func servable(pkgs []files.Package, rej []files.Rejected) (ok []files.Package, _ []files.Rejected, clash bool) {
	ok = pkgs[:0]
	g := newPathGuard(len(pkgs))
	for _, p := range pkgs {
		if why := unpublishable(p); why != "" {
			rej = append(rej, files.Rejected{Name: p.Name, Reason: why})
			continue
		}
		clash = clash || admitPaths(g, p) != ""
		ok = append(ok, p)
	}
	return ok, rej, clash
}

// settleClashes refuses, among packages whose paths clash (admitPaths), all
// but one: one accepted before (it has a verdict in the state) wins over a
// newcomer, so an upstream that adds a case variant of a name cannot push
// the package out; between equals, the first in name order wins. Called
// only when servable found a clash.
func (r *run) settleClashes(src *SourceConfig, pkgs []files.Package, rej []files.Rejected) ([]files.Package, []files.Rejected) {
	known := func(p files.Package) bool { _, ok := r.st.Verified[src.Name+":"+p.Name]; return ok }
	order := make([]files.Package, 0, len(pkgs))
	for _, p := range pkgs {
		if known(p) {
			order = append(order, p)
		}
	}
	for _, p := range pkgs {
		if !known(p) {
			order = append(order, p)
		}
	}
	g := newPathGuard(len(order))
	refused := map[string]bool{}
	for _, p := range order {
		if why := admitPaths(g, p); why != "" {
			refused[p.Name] = true
			rej = append(rej, files.Rejected{Name: p.Name, Reason: why})
		}
	}
	ok := pkgs[:0]
	for _, p := range pkgs {
		if !refused[p.Name] {
			ok = append(ok, p)
		}
	}
	return ok, rej
}

// admitPaths adds the publish paths of p (its file and signatures) to g,
// which holds those of the packages of its source admitted before, and
// says why they collide (repo.TreeGuard: a path equal to another's when
// case is ignored, a file that is also a folder, a file inside a file), or
// "". A package that collides is refused by name (an unsigned listing can
// add a case variant of a name) instead of failing the whole run when the
// bundle is made. Source names are lowercase, so two sources cannot
// collide.
func admitPaths(g *repo.TreeGuard, p files.Package) string {
	var buf [4]string
	paths := append(buf[:0], p.Path)
	for _, s := range p.Signatures {
		paths = append(paths, s.Path)
	}
	if err := g.Add(paths...); err != nil {
		return fmt.Sprintf("cannot be served inside the gap: %v", err)
	}
	return ""
}

// newPathGuard is a repo.TreeGuard for n packages' publish paths; a path
// may come again (a signature several packages share).
func newPathGuard(n int) *repo.TreeGuard {
	g := repo.NewTreeGuard(2*n, true)
	return g
}
