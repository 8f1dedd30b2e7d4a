package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/mirror/repo"
	"github.com/mirror-tool/mirror/mirror/source/apt"
	"github.com/mirror-tool/mirror/verify"
)

// Reasons an import refuses a bundle (besides the bundle package's own:
// bundle.ErrSignature, bundle.ErrHashMismatch, ...).
var (
	// ErrRollback: the bundle's sequence is not newer than the last one
	// imported (and it is not that same bundle again).
	ErrRollback = errors.New("rollback refused")
	// ErrMissingBase: a delta whose base was not imported.
	ErrMissingBase = errors.New("the delta's base is not imported")
	// ErrExpired: now is past the bundle's expiry.
	ErrExpired = errors.New("bundle has expired")
	// ErrTooOld: the bundle was created longer ago than --max-age.
	ErrTooOld = errors.New("bundle is older than the allowed maximum age")
	// ErrRecheck: --recheck found a package its carried trust file does not
	// accept.
	ErrRecheck = errors.New("re-check of upstream signatures failed")
)

// RefusedError is a bundle the import refused; nothing served changed.
type RefusedError struct {
	Bundle   string // the file (first part) as given
	Sequence uint64 // 0 when the manifest could not be trusted
	Err      error
}

func (e *RefusedError) Error() string {
	if e.Sequence == 0 {
		return fmt.Sprintf("refused %s: %v", e.Bundle, e.Err)
	}
	return fmt.Sprintf("refused %s (sequence %d): %v", e.Bundle, e.Sequence, e.Err)
}
func (e *RefusedError) Unwrap() error { return e.Err }

// ImportOptions configure Import.
type ImportOptions struct {
	Repo    string             // repository folder
	Pub     minisign.PublicKey // the pinned operator key: the only key trusted
	MaxAge  time.Duration      // refuse bundles created longer ago; 0: only Expires counts
	Recheck bool               // re-verify upstream signatures with the carried trust file
	Keep    int                // generations kept; 0 = repo.DefaultKeep
	Limits  bundle.Limits      // zero fields: bundle.DefaultLimits
	Now     func() time.Time   // nil = time.Now
	// Progress, when set, hears about each bundle and blob.
	Progress ImportProgress
}

// ImportProgress receives progress of an import. Calls come from the
// importing goroutine.
type ImportProgress interface {
	Start(bundle string, sequence uint64, blobs int, bytes int64)
	Blob(bytes int64)
	Done(res ImportResult)
}

// ImportResult is what one bundle did.
type ImportResult struct {
	Bundle   string `json:"bundle"`
	Sequence uint64 `json:"sequence"`
	Base     uint64 `json:"base_sequence"`
	BundleID string `json:"bundle_id"`
	Signer   string `json:"signer"`
	Result   string `json:"result"` // repo.ResultImported or repo.ResultAlready
	Packages int    `json:"packages"`
	Files    int    `json:"files"`
	NewBlobs int    `json:"new_blobs"`
	Bytes    int64  `json:"bytes"`
	// Collected counts what collection removed after the switch.
	CollectedGenerations int `json:"collected_generations"`
	CollectedBlobs       int `json:"collected_blobs"`
	// Warning is what failed after the switch (the import took effect).
	Warning string `json:"warning,omitempty"`
	// Withdrawn counts the files the generation served before and this one
	// does not (a package the outside refused or dropped: a revoked key,
	// a narrowed scope, an upstream removal); WithdrawnFirst names the
	// first few, in path order.
	Withdrawn      int      `json:"withdrawn"`
	WithdrawnFirst []string `json:"withdrawn_first,omitempty"`
}

// withdrawnShown bounds ImportResult.WithdrawnFirst.
const withdrawnShown = 5

// partRe matches the part files of a split bundle: NAME.tar.zst.part-NNN.
var partRe = regexp.MustCompile(`^(.*\.tar\.zst)\.part-[0-9]{3}$`)

// GroupBundles groups the files given on the command line into bundles:
// the parts of one split bundle (NAME.tar.zst.part-NNN) together, by file
// name, wherever they are (parts may come on several media), every other
// file alone; detached .minisig files (for stock tools) are skipped, and
// so is a file given again (the same path, or another path to the same
// file: a shell pattern that matches a file named before it). Groups keep
// the order of their first file.
func GroupBundles(paths []string) [][]string {
	var out [][]string
	idx := map[string]int{}
	var seen []string
	var seenInfo []os.FileInfo
	for _, p := range paths {
		if filepath.Ext(p) == ".minisig" {
			continue
		}
		fi, _ := os.Stat(p)
		if slices.ContainsFunc(seen, func(q string) bool { return filepath.Clean(q) == filepath.Clean(p) }) ||
			fi != nil && slices.ContainsFunc(seenInfo, func(o os.FileInfo) bool { return o != nil && os.SameFile(o, fi) }) {
			continue
		}
		seen, seenInfo = append(seen, p), append(seenInfo, fi)
		key := p
		if m := partRe.FindStringSubmatch(filepath.Base(p)); m != nil {
			key = "part:" + m[1] // parts may come from several media (folders)
		}
		if i, ok := idx[key]; ok {
			out[i] = append(out[i], p)
			continue
		}
		idx[key] = len(out)
		out = append(out, []string{p})
	}
	return out
}

// withdrawn compares tree with the generation served in the repository at
// dir: how many of its files tree leaves out, and the first few. Without
// a readable generation before (the first import), none.
func withdrawn(dir string, tree []repo.Entry) (int, []string) {
	st, err := repo.ReadState(dir)
	if err != nil || st.Sequence == 0 {
		return 0, nil
	}
	prev, err := repo.ReadRecord(dir, st.Sequence)
	if err != nil {
		return 0, nil
	}
	now := make(map[string]bool, len(tree))
	for _, e := range tree {
		now[e.Path] = true
	}
	var gone []string
	for _, e := range prev.Tree {
		if !now[e.Path] {
			gone = append(gone, e.Path)
		}
	}
	slices.Sort(gone)
	return len(gone), gone[:min(len(gone), withdrawnShown)]
}

// sameFiles reports whether a and b name the same files, in any order.
func sameFiles(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	clean := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = filepath.Clean(p)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(clean(a), clean(b))
}

type pending struct {
	paths []string
	m     *bundle.Manifest
	rd    *bundle.Reader // still open from the first pass (a single bundle), or nil
}

// Import imports bundles into the repository at opts.Repo: each checked
// against the pinned key, in sequence order (the parts of a split bundle
// given together), refusing rollbacks, replays, stale bundles and deltas
// without their base. Each imported bundle becomes the served generation
// by one atomic switch; a refused or failed one changes nothing served.
// Every bundle gets one line in the import log. The error joins one
// *RefusedError (or I/O error) per bundle not imported.
func Import(ctx context.Context, opts ImportOptions, paths []string) ([]ImportResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Keep <= 0 {
		opts.Keep = repo.DefaultKeep
	}
	groups := GroupBundles(paths)
	if len(groups) == 0 {
		return nil, errors.New("no bundle given")
	}
	// A bundle file that is not there is a slip of the command line, not a
	// bundle to refuse: it is said before the repository is opened (or
	// made, for a --repo that does not exist yet), and nothing is logged.
	for i, g := range groups {
		if len(g) == 1 { // a whole bundle, or the name of a split one
			files, err := bundle.Files(g[0])
			if err != nil {
				return nil, err
			}
			groups[i] = files
			continue
		}
		for _, p := range g {
			if _, err := os.Stat(p); err != nil {
				return nil, err
			}
		}
	}
	// A split bundle named whole and also by its parts is one bundle.
	for i := 0; i < len(groups); i++ {
		if slices.ContainsFunc(groups[:i], func(g []string) bool { return sameFiles(g, groups[i]) }) {
			groups = slices.Delete(groups, i, i+1)
			i--
		}
	}
	r, err := repo.Open(ctx, opts.Repo)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	repo.Checkpoint("opened")

	// First pass: check each signature and read the manifests, to order
	// the bundles. The second pass opens them again (and checks again),
	// except a single bundle, whose reader stays open: it has read nothing
	// past its checked manifest yet.
	var todo []pending
	var errs []error
	for _, g := range groups {
		rd, err := bundle.Open(ctx, g, opts.Pub, opts.Limits)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, logRefusal(r, opts, g[0], nil, err))
			continue
		}
		p := pending{paths: g, m: rd.Manifest()}
		if len(groups) == 1 {
			p.rd = rd
		} else {
			rd.Close()
		}
		todo = append(todo, p)
	}
	slices.SortStableFunc(todo, func(a, b pending) int {
		switch {
		case a.m.Sequence < b.m.Sequence:
			return -1
		case a.m.Sequence > b.m.Sequence:
			return 1
		}
		return 0
	})
	var results []ImportResult
	for _, p := range todo {
		res, err := importOne(ctx, r, opts, p)
		if opts.Progress != nil {
			opts.Progress.Done(res)
		}
		if res.Result != "" {
			results = append(results, res) // done, even if logging it failed
		}
		if err != nil {
			if ctx.Err() != nil {
				return results, errors.Join(append(errs, ctx.Err())...)
			}
			errs = append(errs, err)
		}
	}
	return results, errors.Join(errs...)
}

// isRefusal tells a bad bundle (refused) from a failure of this machine.
func isRefusal(err error) bool {
	for _, e := range []error{ErrRollback, ErrMissingBase, ErrExpired, ErrTooOld, ErrRecheck,
		bundle.ErrSignature, bundle.ErrFormat, bundle.ErrMalformed, bundle.ErrLimit, bundle.ErrHashMismatch,
		bundle.ErrUnlisted, bundle.ErrDuplicate, bundle.ErrUnsafePath, bundle.ErrTrailingData,
		bundle.ErrCorrupt, bundle.ErrTruncated, bundle.ErrPart, bundle.ErrNotRegular, repo.ErrBlobMismatch, repo.ErrBadPath,
		repo.ErrMissingBlob} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// logRefusal logs a bundle not imported and returns the error to report.
func logRefusal(r *repo.Repo, opts ImportOptions, name string, m *bundle.Manifest, err error) error {
	e := repo.LogEntry{Time: opts.Now().UTC(), Bundle: name, Result: repo.ResultFailed, Message: err.Error()}
	if errors.Is(err, context.Canceled) {
		// Stopped (SIGINT, SIGTERM) before the switch: not a failure of
		// this machine, and nothing served changed.
		e.Message = "interrupted before the switch; nothing served changed"
	}
	if m != nil {
		e.Sequence, e.Base, e.BundleID, e.Signer = m.Sequence, m.BaseSequence, m.ID, m.OperatorKeyID
		e.Packages, e.Files = len(m.Packages), len(m.Tree)
	}
	var seq uint64
	if m != nil {
		seq = m.Sequence
	}
	if isRefusal(err) {
		e.Result = repo.ResultRefused
		err = &RefusedError{Bundle: name, Sequence: seq, Err: err}
		e.Message = err.Error()
	}
	if lerr := r.AppendLog(e); lerr != nil {
		return errors.Join(err, lerr)
	}
	return err
}

// CheckPublishable checks a manifest's publish tree against the rules of the
// repository it is imported into (repo.CheckTree: no colon or backslash, at
// most repo.MaxPathLen bytes and repo.MaxPathDepth levels, no two paths
// equal when case is ignored, no file inside another, at most
// repo.MaxTreeEntries files). The bundle format allows more; import refuses
// such a tree before it stores any blob, `mirror verify` reports it, and
// sync never writes one. The error matches repo.ErrBadPath.
func CheckPublishable(m *bundle.Manifest) error {
	if len(m.Tree) > repo.MaxTreeEntries {
		return fmt.Errorf("publish tree has %d files, limit %d: %w", len(m.Tree), repo.MaxTreeEntries, repo.ErrBadPath)
	}
	tree := make([]repo.Entry, len(m.Tree))
	for i, e := range m.Tree {
		tree[i] = repo.Entry{Path: e.Path, SHA256: e.SHA256, Size: e.Size}
	}
	if err := repo.CheckTree(tree); err != nil {
		return fmt.Errorf("the publish tree cannot be served: %w", err)
	}
	return nil
}

// admit applies the repository's rules to a trusted manifest: replay,
// rollback, expiry, maximum age, base, a publishable tree. already reports
// the same bundle imported before (nothing to do).
func admit(r *repo.Repo, opts ImportOptions, m *bundle.Manifest) (already bool, err error) {
	st, err := repo.ReadState(r.Dir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	var last uint64
	if st != nil {
		last = st.Sequence
	}
	if st.Has(m.Sequence, m.ID) {
		return true, nil
	}
	if m.Sequence <= last {
		return false, fmt.Errorf("%w: the repository is at sequence %d (bundle id %s); this bundle has sequence %d and id %s; only a newer bundle is imported: this file is superseded by what is served (a medium lost and recovered with --since, or an old file left in the import folder): remove it",
			ErrRollback, last, st.BundleID, m.Sequence, m.ID)
	}
	now := opts.Now()
	if !m.Expires.IsZero() && !now.Before(m.Expires) {
		return false, fmt.Errorf("%w: it expired at %s (now %s); carry receipt.json out and have the operator run `mirror sync --since receipt.json` for a fresh bundle",
			ErrExpired, m.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if opts.MaxAge > 0 && now.Sub(m.Created) > opts.MaxAge {
		return false, fmt.Errorf("%w: created %s, %s ago, more than --max-age %s; carry receipt.json out and have the operator run `mirror sync --since receipt.json` for a fresh bundle",
			ErrTooOld, m.Created.UTC().Format(time.RFC3339), now.Sub(m.Created).Round(time.Second), opts.MaxAge)
	}
	if m.BaseSequence != 0 && last < m.BaseSequence {
		return false, fmt.Errorf("%w: this delta (sequence %d) builds on sequence %d, the repository is at %d; import the bundle with sequence %d first; if it is lost, carry receipt.json out and have the operator run `mirror sync --since receipt.json`",
			ErrMissingBase, m.Sequence, m.BaseSequence, last, m.BaseSequence)
	}
	if err := CheckPublishable(m); err != nil {
		return false, err
	}
	// Blobs the tree needs that are neither carried nor stored.
	carried := make(map[string]bool, len(m.Blobs))
	for _, b := range m.Blobs {
		carried[b.SHA256] = true
	}
	var need []repo.Entry
	for _, e := range m.Tree {
		if !carried[e.SHA256] {
			need = append(need, repo.Entry{Path: e.Path, SHA256: e.SHA256, Size: e.Size})
		}
	}
	if err := r.Missing(need); err != nil {
		return false, fmt.Errorf("%w: the repository lost content this delta expects from sequence %d: %w; import a full bundle (mirror sync --full)",
			ErrMissingBase, m.BaseSequence, err)
	}
	return false, nil
}

func importOne(ctx context.Context, r *repo.Repo, opts ImportOptions, p pending) (ImportResult, error) {
	name := p.paths[0]
	rd := p.rd
	if rd == nil {
		var err error
		if rd, err = bundle.Open(ctx, p.paths, opts.Pub, opts.Limits); err != nil {
			return ImportResult{}, logRefusal(r, opts, name, nil, err)
		}
	}
	defer rd.Close()
	m := rd.Manifest()
	if m.ID != p.m.ID {
		return ImportResult{}, logRefusal(r, opts, name, m, fmt.Errorf("%w: the file changed while importing", bundle.ErrMalformed))
	}
	res := ImportResult{Bundle: name, Sequence: m.Sequence, Base: m.BaseSequence, BundleID: m.ID,
		Signer: m.OperatorKeyID, Packages: len(m.Packages), Files: len(m.Tree)}
	already, err := admit(r, opts, m)
	if err != nil {
		return res, logRefusal(r, opts, name, m, err)
	}
	if already {
		res.Result = repo.ResultAlready
		// Finish a collection a kill may have interrupted after the switch.
		res.CollectedGenerations, res.CollectedBlobs, err = r.Collect(ctx, opts.Keep)
		if err != nil {
			return res, err
		}
		err = r.AppendLog(repo.LogEntry{Time: opts.Now().UTC(), Bundle: name, Sequence: m.Sequence, Base: m.BaseSequence,
			BundleID: m.ID, Signer: m.OperatorKeyID, Packages: res.Packages, Files: res.Files, Result: repo.ResultAlready,
			Message: fmt.Sprintf("bundle %s (sequence %d) was imported before; nothing to do", m.ID, m.Sequence)})
		return res, err
	}
	if opts.Progress != nil {
		opts.Progress.Start(name, m.Sequence, len(m.Blobs), m.TotalBlobSize())
	}

	in := r.Ingest(ctx)
	for {
		info, br, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			err = in.Add(info.SHA256, info.Size, br)
		}
		if err != nil {
			if werr := in.Wait(); werr != nil && errors.Is(err, context.Canceled) && ctx.Err() == nil {
				err = werr // a worker failed first
			}
			return res, logRefusal(r, opts, name, m, err)
		}
		if opts.Progress != nil {
			opts.Progress.Blob(info.Size)
		}
	}
	if err := in.Wait(); err != nil {
		return res, logRefusal(r, opts, name, m, err)
	}
	res.NewBlobs, res.Bytes = in.NewBlobs, in.Bytes
	repo.Checkpoint("ingested")

	if opts.Recheck {
		if err := recheck(ctx, r, m); err != nil {
			return res, logRefusal(r, opts, name, m, err)
		}
	}
	rec := &repo.Record{Sequence: m.Sequence, BaseSequence: m.BaseSequence, BundleID: m.ID, Signer: m.OperatorKeyID,
		Created: m.Created.UTC(), Expires: m.Expires.UTC(), Imported: opts.Now().UTC(), ToolVersion: m.ToolVersion,
		Packages: len(m.Packages), Tree: make([]repo.Entry, len(m.Tree))}
	for i, e := range m.Tree {
		rec.Tree[i] = repo.Entry{Path: e.Path, SHA256: e.SHA256, Size: e.Size}
	}
	res.Withdrawn, res.WithdrawnFirst = withdrawn(r.Dir(), rec.Tree)
	var switched *repo.SwitchedError
	if err := r.Publish(ctx, rec, rd.ManifestBytes()); err != nil && !errors.As(err, &switched) {
		return res, logRefusal(r, opts, name, m, err)
	}
	res.Result = repo.ResultImported
	// The switch is done: from here on, errors do not undo the import.
	msg := fmt.Sprintf("generation %d served", m.Sequence)
	if res.Withdrawn > 0 {
		msg += fmt.Sprintf("; %d files of the generation before are no longer served (%s)", res.Withdrawn, strings.Join(res.WithdrawnFirst, ", "))
	}
	if switched != nil {
		// state.json may lag: no collection until the next import has
		// repaired it.
		res.Warning = switched.Error()
		msg += "; " + res.Warning
	} else {
		g, b, cerr := r.Collect(ctx, opts.Keep)
		res.CollectedGenerations, res.CollectedBlobs = g, b
		repo.Checkpoint("collected")
		if cerr != nil {
			res.Warning = "collection failed (retried at the next import): " + cerr.Error()
			msg += "; " + res.Warning
		}
	}
	lerr := r.AppendLog(repo.LogEntry{Time: opts.Now().UTC(), Bundle: name, Sequence: m.Sequence, Base: m.BaseSequence,
		BundleID: m.ID, Signer: m.OperatorKeyID, Packages: res.Packages, Files: res.Files, NewBlobs: res.NewBlobs,
		Bytes: res.Bytes, Result: repo.ResultImported, Message: msg})
	if lerr != nil {
		// Served all the same: a warning, not a failure that would say
		// nothing served changed.
		res.Warning = strings.TrimPrefix(res.Warning+"; the import log has no line for it: "+lerr.Error(), "; ")
	}
	return res, nil
}

// recheck re-verifies every package's upstream signatures against the trust
// file the bundle carries, at the bundle's creation time (the moment the
// operator's tool decided): an audit of that decision.
func recheck(ctx context.Context, r *repo.Repo, m *bundle.Manifest) error {
	if m.Trust.File == "" {
		if len(m.Packages) == 0 {
			return nil
		}
		return fmt.Errorf("%w: the bundle carries no trust file to check %d packages against", ErrRecheck, len(m.Packages))
	}
	// verify loads trust files by path: write the carried one to tmp/.
	tf := filepath.Join(r.Dir(), repo.TmpDir, "trust-"+m.ID+".toml")
	if err := os.WriteFile(tf, []byte(m.Trust.File), 0o600); err != nil {
		return err
	}
	defer os.Remove(tf)
	pol, _, err := verify.LoadTrustFile(tf)
	if err != nil {
		return fmt.Errorf("%w: the carried trust file: %w", ErrRecheck, err)
	}
	st := r.Store()
	rc := apt.NewRechecker(pol, m.Created)
	for _, pkg := range m.Packages {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := pkg.Source + ":" + pkg.Name
		// apt packages are proven by a signed release and an index, not
		// by detached signatures (import_apt.go).
		if v, ok, err := recheckApt(ctx, rc, st, pkg); ok {
			if err != nil {
				return fmt.Errorf("%w: %s %s: %w", ErrRecheck, id, pkg.Version, err)
			}
			if !v.Accepted {
				return fmt.Errorf("%w: %s %s is not accepted by the bundle's own trust file: %s", ErrRecheck, id, pkg.Version, v.Reason)
			}
			continue
		}
		// Packages taken from a signed checksum list are proven by the
		// list (import_list.go).
		if v, ok, err := recheckList(ctx, pol, st, pkg, m.Created); ok {
			if err != nil {
				return fmt.Errorf("%w: %s %s: %w", ErrRecheck, id, pkg.Version, err)
			}
			if !v.Accepted {
				return fmt.Errorf("%w: %s %s is not accepted by the bundle's own trust file: %s", ErrRecheck, id, pkg.Version, v.Reason)
			}
			continue
		}
		var sigs []verify.Signature
		for i := range pkg.Signatures {
			s := &pkg.Signatures[i]
			data, err := readBlob(st, s, verify.MaxSignatureSize)
			if err != nil {
				return fmt.Errorf("%w: %s: signature %w", ErrRecheck, id, err)
			}
			sigs = append(sigs, verify.Signature{Name: path.Base(s.Path), Data: data, File: path.Base(pkg.Path)})
		}
		f, err := st.Open(pkg.SHA256)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrRecheck, id, err)
		}
		v, err := pol.Check(ctx, id, f, sigs, m.Created)
		f.Close()
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrRecheck, id, err)
		}
		if !v.Accepted {
			return fmt.Errorf("%w: %s %s is not accepted by the bundle's own trust file: %s", ErrRecheck, id, pkg.Version, v.Reason)
		}
	}
	return nil
}
