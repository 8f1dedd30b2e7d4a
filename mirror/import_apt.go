package mirror

import (
	"context"
	"fmt"
	"io"

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
	load := func(sum string, max int64) ([]byte, error) {
		f, err := st.Open(sum)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, max+1))
		if err != nil {
			return nil, err
		}
		if int64(len(b)) > max {
			return nil, fmt.Errorf("blob %s is larger than %d bytes", sum, max)
		}
		return b, nil
	}
	v, err = rc.Check(ctx, pkg.Source, pkg.Name, pkg.Path, pkg.SHA256, pkg.Size, ev, load)
	return v, true, err
}
