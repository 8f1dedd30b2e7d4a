package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/mirror/source/apt"
	"github.com/mirror-tool/mirror/mirror/source/files"
	"github.com/mirror-tool/mirror/mirror/state"
)

// aptRun is one apt source's verified selection, kept between resolve and
// publish.
type aptRun struct {
	src *SourceConfig
	sel *apt.Selection
}

// resolveApt walks an apt source's chain of trust (mirror/source/apt) and
// turns its .deb files into pipeline items checked by the SHA-256 of the
// verified Packages index, like files from a signed checksum list.
func (r *run) resolveApt(ctx context.Context, src *SourceConfig) ([]*item, []PackageResult, error) {
	client, err := r.client(src)
	if err != nil {
		return nil, nil, err
	}
	got := map[string]small{}
	get := func(ctx context.Context, req apt.Request) ([]byte, error) {
		u := src.Apt.URLOf(req.Path)
		if req.SHA256 != "" {
			// By-hash content never changes: a copy verified in an earlier
			// run is used without a request.
			if data, ok := r.cached(req.SHA256, req.Max); ok {
				return data, nil
			}
		}
		s, err := r.getSmall(ctx, client, u, req.Max, req.Conditional)
		if err != nil {
			return nil, err
		}
		got[u] = s
		return s.data, nil
	}
	sel, err := apt.Resolve(ctx, src.Apt, get, r.policy, r.now)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: source %q: %w", ErrSync, src.Name, err)
	}
	// Decoding a Packages.xz takes the dictionary its header asks for (8
	// MiB for xz's default preset, however small the index), garbage from
	// here on: give it back to the system now, or it adds to the peak that
	// the downloads and the bundle writer make later (apt bench: peak RSS
	// 37-38 MiB in 5 of 25 runs without this, 33 MiB in 25 of 25 with it).
	debug.FreeOSMemory()
	for _, s := range sel.Suites {
		mark, err := r.notOlder(src, s)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: source %q: %w", ErrSync, src.Name, err)
		}
		r.mu.Lock()
		r.verified.put(releaseKey(src, s.Name), mark)
		r.mu.Unlock()
	}
	var rej []PackageResult
	for _, x := range sel.Rejected {
		rej = append(rej, rejected(src, x.Name, x.Reason))
	}
	// The verified release files and indexes enter the cache (the next
	// run revalidates InRelease with one conditional request and reads
	// unchanged indexes from here) and the tree (as evidence under
	// SOURCE/_upstream/, or as the served files when the upstream's
	// signature is kept). Like the downloads they enter without an fsync
	// each: the run's one cache.Sync makes them durable before the state
	// records them, and a run killed before it leaves the batch marker, so
	// the next run's cache.Recover re-hashes them.
	if !r.opt.DryRun {
		for _, s := range sel.Suites {
			for _, f := range append(append([]apt.File{}, s.Signed...), s.Indexes...) {
				sum := sha256Hex(f.Data)
				if err := r.cache.PutBatched(ctx, bytes.NewReader(f.Data), sum, int64(len(f.Data))); err != nil {
					return nil, nil, err
				}
				u := src.Apt.URLOf("dists/" + s.Name + "/" + f.Path)
				if sm, ok := got[u]; ok {
					r.record(u, state.Upstream{SHA256: sum, Size: int64(len(f.Data)), ETag: sm.v.ETag, LastModified: sm.v.LastModified})
				}
			}
		}
		// A suite refused in this run (a broken or unverifiable release)
		// keeps the records of the release mirrored before, and with them
		// its cached copy: one refused run must not erase the mark that
		// notOlder compares the next release with.
		taken := map[string]bool{}
		for _, s := range sel.Suites {
			taken[s.Name] = true
		}
		for _, name := range src.Apt.Suites {
			if !taken[name] {
				for _, f := range []string{"InRelease", "Release", "Release.gpg"} {
					r.carryRecord(src.Apt.URLOf("dists/" + name + "/" + f))
				}
			}
		}
		used := true
		for _, f := range sel.UpstreamFiles() {
			sum := sha256Hex(f.Data)
			r.keepSmall(sum, f.Data)
			r.extras = append(r.extras, extra{source: src.Name, path: f.Path, sha: sum, size: int64(len(f.Data)), used: &used})
		}
	}
	var items []*item
	guard := newPathGuard(len(sel.Debs))
	for _, d := range sel.Debs {
		li := &listInfo{}
		for _, e := range d.Evidence {
			if e.Scheme == apt.SchemePackages {
				li.what = "the Packages index " + e.Path + " (signed through its release)"
			}
			li.sigs = append(li.sigs, bundle.PackageSignature{Path: e.Path, SHA256: e.SHA256, Scheme: e.Scheme})
		}
		pkg := files.Package{Name: d.Name, URL: src.Apt.URLOf(d.Filename), Path: src.Apt.PublishPath(d.Filename), SHA256: d.SHA256}
		why := onGeneratedPath(d.Filename)
		if why == "" {
			why = unpublishable(pkg)
		}
		if why == "" {
			why = admitPaths(guard, pkg) // the index is signed: no unsigned newcomer to settle against
		}
		if why != "" {
			rej = append(rej, rejected(src, d.Name, why))
			continue
		}
		items = append(items, &item{src: src, client: client, fromList: li, keys: d.Keys, size: d.Size, pkg: pkg})
	}
	r.apt = append(r.apt, aptRun{src: src, sel: sel})
	return items, rej, nil
}

// onGeneratedPath says why a file named by a signed index (a Packages
// Filename, a Sources file) cannot be published: its first element is,
// ignoring case as the publish tree's collision check does, a folder the
// mirror writes itself under SOURCE/ (dists/, the operator-signed indexes
// and their by-hash copies; _upstream/, the upstream's evidence). Such a
// file would collide with a generated one, or stand where a generated one
// needs a folder, and fail the whole run; refused here, it is one package
// rejected by name. "" when the path is free.
func onGeneratedPath(filename string) string {
	first, _, _ := strings.Cut(filename, "/")
	for _, dir := range []string{"dists", apt.UpstreamDir} {
		if strings.EqualFold(first, dir) {
			return fmt.Sprintf("its file %s lies under %s/, where the mirror publishes files of its own: refused", filename, first)
		}
	}
	return ""
}

// ErrUpstreamRollback: an upstream served a release older than one mirrored
// before.
var ErrUpstreamRollback = errors.New("the upstream rolled back")

// ErrRollbackMark: the release mirrored before cannot be read back, so a new
// release cannot be compared with it.
var ErrRollbackMark = errors.New("the rollback mark cannot be read")

// releaseKey is where the mark of an apt suite is remembered among the
// verdicts: "SOURCE:dists/SUITE", the name a refused suite is reported
// under (so a refused run carries the mark), which no package name can
// take (Debian package names hold no slash).
func releaseKey(src *SourceConfig, suite string) string {
	return src.Name + ":dists/" + suite
}

// notOlder refuses a suite whose verified release is dated before the
// release this state mirrored last time, or has no Date where that one had
// one: a validly signed but older release, inside its Valid-Until, is how a
// malicious or stale mirror holds clients back (a rollback). It returns the
// mark to remember for the next run: the Date of the release accepted now,
// as parsed from the text its signature was checked on, never from bytes
// read back later. A mark that exists but cannot be read refuses the suite:
// silently skipping the comparison would let a rollback through.
func (r *run) notOlder(src *SourceConfig, s *apt.Suite) (state.Verified, error) {
	key := releaseKey(src, s.Name)
	mark := state.Verified{File: sha256Hex(s.Signed[0].Data), Trust: r.trustSHA, At: r.now, Signed: r.capMark(s.Release.Date)}
	prev, ok := r.st.Verified[key]
	if ok && prev.File == mark.File {
		return prev, nil // the same release: its mark stays as it was
	}
	if !ok {
		date, had, err := r.legacyReleaseDate(src, s.Name)
		switch {
		case err != nil && r.acceptRollback(key):
			return mark, nil
		case err != nil:
			return state.Verified{}, fmt.Errorf("%w: suite %s: %w: nothing of this source was taken; if the upstream is known to be sane, run sync once with --accept-rollback '%s' to take its release as the new mark",
				ErrRollbackMark, s.Name, err, key)
		case !had:
			return mark, nil // nothing mirrored before: nothing to compare with
		}
		prev.Signed = date
	}
	date := s.Release.Date
	if r.acceptRollback(key) || prev.Signed.IsZero() || (!date.IsZero() && !date.Before(prev.Signed)) {
		return mark, nil
	}
	what := "is dated " + apt.FormatDate(date)
	if date.IsZero() {
		what = "has no Date"
	}
	return state.Verified{}, fmt.Errorf("%w: suite %s: the release %s, older than the one mirrored before (%s); a stale or malicious mirror serves an old, validly signed release: nothing of this source was taken; check the upstream URL, and wait for it to catch up (if the upstream really went back, run sync once with --accept-rollback '%s')",
		ErrUpstreamRollback, s.Name, what, apt.FormatDate(prev.Signed), key)
}

// capMark returns date, or this run's second if date is later: Release.Check
// lets a Date lie up to apt.MaxDateSkew ahead of the clock, and a mark in
// the future would refuse the next, correctly dated release (as notRolledBack
// caps the files source's marks).
func (r *run) capMark(date time.Time) time.Time {
	if now := r.now.Truncate(time.Second); date.After(now) {
		return now
	}
	return date
}

// legacyReleaseDate returns, for a state written before release marks were
// kept among its verdicts, the Date of the release it recorded for suite
// (InRelease or Release, whichever was recorded), read back from the
// cache, where it entered only after its signature check; had is false
// when there is no such record. A record whose copy the cache lost, or
// that does not parse, is an error.
func (r *run) legacyReleaseDate(src *SourceConfig, suite string) (date time.Time, had bool, err error) {
	for _, name := range []string{"InRelease", "Release"} {
		rec, ok := r.st.Upstreams[src.Apt.URLOf("dists/"+suite+"/"+name)]
		if !ok {
			continue
		}
		data, ok := r.cached(rec.SHA256, apt.MaxReleaseSize)
		if !ok {
			return time.Time{}, true, fmt.Errorf("the %s mirrored before (SHA-256 %s) is no longer in the cache", name, rec.SHA256)
		}
		date, err := apt.SignedDate(data)
		if err != nil {
			return time.Time{}, true, fmt.Errorf("the %s mirrored before (SHA-256 %s): %w", name, rec.SHA256, err)
		}
		return date, true, nil
	}
	return time.Time{}, false, nil
}

// cached returns the cache's copy of sum, if it holds one of at most max
// bytes.
func (r *run) cached(sum string, max int64) ([]byte, bool) {
	data, err := r.cache.ReadAll(sum, max)
	if err != nil || sha256Hex(data) != sum {
		return nil, false
	}
	return data, true
}

// publishApt generates, after the downloads were checked, the indexes of
// every filtered apt source: Packages listing only the .deb files that
// passed, Release, InRelease and Release.gpg signed by the operator's
// OpenPGP key. They join the publish tree like any file.
func (r *run) publishApt(ctx context.Context, items []*item) error {
	if r.opt.DryRun || len(r.apt) == 0 {
		return nil
	}
	ok := map[[2]string]bool{} // publish path and SHA-256 of a file that passed
	for _, it := range items {
		if it.src.Apt != nil && it.rejected == "" && it.fileSHA != "" {
			ok[[2]string{it.pkg.Path, it.fileSHA}] = true
		}
	}
	used := true
	var signer *aptSigner
	for _, a := range r.apt {
		if err := ctx.Err(); err != nil {
			return err
		}
		if a.src.Apt.KeepUpstreamSignatures || len(a.sel.Suites) == 0 {
			continue
		}
		if signer == nil {
			var err error
			if signer, err = newAptSigner(r); err != nil {
				return err
			}
		}
		// Signed at the upstream's Date (never before the key was made,
		// never after this run's start: apt clients refuse a release
		// dated in their future): an unchanged selection gives identical
		// files, so a re-run with nothing new makes no bundle, and needs
		// no decryption of the key (aptSigner reuses its signatures).
		at := r.capMark(a.sel.Date())
		if at.Before(signer.created) {
			at = signer.created
		}
		if at.IsZero() {
			at = r.now.Truncate(time.Second)
		}
		out, err := apt.Publish(a.sel, func(path, sum string) bool { return ok[[2]string{path, sum}] }, signer, at)
		if err != nil {
			return fmt.Errorf("%w: source %q: %w", ErrSync, a.src.Name, err)
		}
		for _, f := range out {
			sum := sha256Hex(f.Data)
			r.keepSmall(sum, f.Data)
			r.extras = append(r.extras, extra{source: a.src.Name, path: f.Path, sha: sum, size: int64(len(f.Data)), used: &used})
		}
	}
	if signer != nil {
		return signer.sweep()
	}
	return nil
}
