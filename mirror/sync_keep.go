package mirror

import (
	"github.com/mirror-tool/mirror/bundle"
)

// kept is the last verified version of a package whose new version this
// run refused: it stays in the publish tree, so that a refusal (a bad
// signature, a key out of scope, a rollback, a file gone upstream) does not
// take the package away from the inside until the upstream is sane again.
type kept struct {
	pkg  bundle.Package
	tree []bundle.Entry
}

// keptNote is added to the reason of a refused package whose last verified
// version stays published.
const keptNote = "; the last verified version stays published"

// keepLastGood gives every refused package of a files source with detached
// signatures its last verified version (it.kept), when that version can be
// published again without being carried:
//   - it was accepted under the same trust table (a changed trust table,
//     such as a key removed after a compromise, drops it);
//   - every key that passed it is still inside its trust-file window (a
//     not_after or revoked date that has passed since drops it too);
//   - its file is in the cache;
//   - its file and signatures were shipped in an earlier bundle of this
//     chain (the signatures' bytes are not kept outside the bundles).
//
// So only a delta run keeps versions: --full and --since must carry every
// blob. The records of the kept version are carried into the next state,
// so that the next run can keep it again. Called once the pipeline is done.
func (r *run) keepLastGood(items []*item) {
	if r.opt.Full || r.opt.Since != "" || r.st.Sequence == 0 {
		return
	}
	shipped := func(sum string) bool { _, ok := r.st.Shipped[sum]; return ok }
	for _, it := range items {
		if it.rejected == "" || it.src.Files == nil || it.fromList != nil || len(it.pkg.Signatures) == 0 {
			continue
		}
		v, ok := r.st.Verified[it.full()]
		if !ok || v.Trust != r.trustSHA || v.File == "" || !shipped(v.File) || !r.keysInWindow(v.Keys) {
			continue
		}
		frec, ok := r.st.Upstreams[it.pkg.URL]
		if !ok || frec.SHA256 != v.File {
			continue
		}
		if has, err := r.present.Has(v.File); err != nil || !has {
			continue
		}
		k := &kept{pkg: bundle.Package{Source: it.src.Name, Name: it.pkg.Name, Path: it.pkg.Path, Size: frec.Size, SHA256: frec.SHA256, Keys: v.Keys}}
		k.tree = append(k.tree, bundle.Entry{Path: it.pkg.Path, SHA256: frec.SHA256, Size: frec.Size})
		for _, s := range it.pkg.Signatures {
			srec, ok := r.st.Upstreams[s.URL]
			if !ok || !shipped(srec.SHA256) {
				k = nil
				break
			}
			k.pkg.Signatures = append(k.pkg.Signatures, bundle.PackageSignature{Path: s.Path, SHA256: srec.SHA256, Scheme: sigScheme(v.Schemes, s.URL)})
			k.tree = append(k.tree, bundle.Entry{Path: s.Path, SHA256: srec.SHA256, Size: srec.Size})
		}
		if k == nil {
			continue
		}
		it.kept = k
		it.rejected += keptNote
		for _, u := range append([]string{it.pkg.URL}, sigURLs(it)...) {
			r.carryRecord(u)
		}
	}
}

// keysInWindow reports whether every trusted key named in names is inside
// its trust-file window (not_before, not_after, revoked) at the run's time,
// as the policy judges a new signature.
func (r *run) keysInWindow(names []string) bool {
	for _, n := range names {
		for _, k := range r.cfg.Trust.Keys {
			if k.Name != n {
				continue
			}
			if k.Revoked != nil && !r.now.Before(*k.Revoked) ||
				k.NotBefore != nil && r.now.Before(*k.NotBefore) ||
				k.NotAfter != nil && r.now.After(*k.NotAfter) {
				return false
			}
		}
	}
	return true
}

func sigURLs(it *item) []string {
	us := make([]string, len(it.pkg.Signatures))
	for i, s := range it.pkg.Signatures {
		us[i] = s.URL
	}
	return us
}
