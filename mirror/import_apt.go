package mirror

import (
	"context"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/mirror/source/apt"
	"github.com/mirror-tool/mirror/mirror/store"
	"github.com/mirror-tool/mirror/verify"
)

// recheckApt re-checks an apt package of a bundle from its carried evidence
// (mirror/source/apt Rechecker); handled is false for other packages.
func recheckApt(ctx context.Context, rc *apt.Rechecker, st *store.Store, pkg bundle.Package) (v verify.Verdict, handled bool, err error) {
	schemes := make([]string, len(pkg.Signatures))
	ev := make([]apt.Evidence, len(pkg.Signatures))
	for i, s := range pkg.Signatures {
		schemes[i] = s.Scheme
		ev[i] = apt.Evidence{Path: s.Path, SHA256: s.SHA256, Scheme: s.Scheme}
	}
	if !apt.IsEvidence(schemes) {
		return verify.Verdict{}, false, nil
	}
	v, err = rc.Check(ctx, pkg.Source, pkg.Name, pkg.Path, pkg.SHA256, pkg.Size, ev, st.ReadAll)
	return v, true, err
}
