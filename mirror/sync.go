package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/atomicfile"
	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/mirror/fetch"
	"github.com/mirror-tool/mirror/mirror/lock"
	"github.com/mirror-tool/mirror/mirror/repo"
	"github.com/mirror-tool/mirror/mirror/state"
	"github.com/mirror-tool/mirror/mirror/store"
)

// Folders inside the state folder.
const (
	// CacheDir is the content-addressed cache of verified content.
	CacheDir = "cache"
	// PartialDir holds downloads in progress (resumed by the next run).
	PartialDir = "partial"
)

// MaxPackageSize bounds one downloaded file when the upstream does not say
// how large it is (the bundle format's own limit on one blob).
var MaxPackageSize = bundle.DefaultLimits.MaxBlobSize

// SyncOptions tune one run of Sync. The zero value is a default run.
type SyncOptions struct {
	// Full makes a complete bundle instead of a delta.
	Full bool
	// DryRun resolves the package set and prints the plan: checksum lists,
	// listings and signatures (small) are fetched, packages are not, and
	// nothing is written but the cache of those small files' validators.
	DryRun bool
	// Jobs overrides the configuration's jobs (parallel downloads) when > 0.
	Jobs int
	// Since is the path of a receipt written by `mirror import`: the
	// bundle then carries exactly the blobs the receipt does not list, on
	// top of the receipt's sequence.
	Since string
	// Progress receives progress; nil discards it.
	Progress Progress
	// AcceptRollback names packages ("source:path", path.Match globs;
	// "source:dists/SUITE" for an apt suite) whose upstream may go back to
	// an older signed release in this run (otherwise refused as
	// ErrUpstreamRollback, or ErrRollbackMark for an apt suite whose last
	// release cannot be read back).
	AcceptRollback []string
	// Passphrase returns the operator key's passphrase (a terminal
	// prompt); it is called only when a bundle is about to be signed, the
	// key is encrypted and neither MIRROR_PASSPHRASE_FILE,
	// MIRROR_PASSPHRASE nor operator.passphrase_file gave it at the start
	// of the run. When nil, an encrypted key without one of those stops the
	// run at its start with operator.ErrNoPassphrase.
	Passphrase func() ([]byte, error)
	// ToolVersion is recorded in the manifest.
	ToolVersion string
	// Now is the clock (time.Now when nil), for the trust windows and the
	// bundle's times.
	Now func() time.Time
	// Fetch is the template of the HTTP clients' options (tests set
	// Transport and short backoffs); a source's timeout, CA file and
	// user agent override it.
	Fetch fetch.Options
	// Level is the bundle's zstd level (0: bundle.DefaultLevel).
	Level int
	// MaxFileSize bounds one downloaded package (0: MaxPackageSize); a
	// larger file is rejected.
	MaxFileSize int64
}

// syncHook, when set (tests only), is called at named points of a run, so
// that a test can kill the process exactly there.
var syncHook func(point string)

func hook(point string) {
	if syncHook != nil {
		syncHook(point)
	}
}

// Package statuses in a SyncResult.
const (
	// StatusNew: accepted, content not shipped in an earlier bundle.
	StatusNew = "new"
	// StatusUnchanged: accepted, content shipped before.
	StatusUnchanged = "unchanged"
	// StatusRejected: not bundled; Reason says why.
	StatusRejected = "rejected"
)

// PackageResult is the outcome for one package.
type PackageResult struct {
	Source string `json:"source"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Fetched: downloaded in this run (false: taken from the cache, or not
	// fetched in a dry run).
	Fetched bool `json:"fetched"`
}

// BundleResult describes the bundle a run wrote.
type BundleResult struct {
	Path         string   `json:"path"`  // NAME.tar.zst (or its first part)
	Paths        []string `json:"paths"` // every file written, .minisig last
	Size         int64    `json:"size"`
	BLAKE2b512   string   `json:"blake2b512"`       // of NAME.tar.zst (joined parts): what the .minisig signs, as b2sum prints it
	SHA256       string   `json:"sha256,omitempty"` // of the joined parts, for a split bundle only
	Sequence     uint64   `json:"sequence"`
	BaseSequence uint64   `json:"base_sequence"`
	Blobs        int      `json:"blobs"`
	BlobBytes    int64    `json:"blob_bytes"`
}

// SyncResult is what a run did.
type SyncResult struct {
	Packages  []PackageResult `json:"packages"`
	New       int             `json:"new"`
	Unchanged int             `json:"unchanged"`
	Rejected  int             `json:"rejected"`
	// BytesDownloaded counts package bytes received in this run.
	BytesDownloaded int64 `json:"bytes_downloaded"`
	// Plan (dry run): packages that would be downloaded, the bytes known
	// from earlier runs for them, and how many have no known size.
	ToFetch      int   `json:"to_fetch"`
	BytesToFetch int64 `json:"bytes_to_fetch"`
	UnknownSize  int   `json:"unknown_size"`
	// Bundle is nil when no bundle was written (dry run, nothing new, or
	// every package rejected).
	Bundle *BundleResult `json:"bundle,omitempty"`
	// NothingNew: the package set and tree are what the last bundle
	// shipped, so no bundle was made.
	NothingNew bool `json:"nothing_new"`
	DryRun     bool `json:"dry_run"`
	// KeyProblem (dry run only) is why a run without --dry-run would
	// stop at its start: the operator key or its passphrase source (see
	// run.checkKey); empty when there is none.
	KeyProblem string        `json:"key_problem,omitempty"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	// CacheCollected is what left the cache after the state was saved:
	// superseded versions and files gone from the package set.
	CacheCollected CacheCollected `json:"cache_collected"`
	// CacheError says why collecting the cache failed (the run itself
	// succeeded; the next run tries again).
	CacheError string `json:"cache_error,omitempty"`
}

// collect removes what the saved state no longer needs from the cache and
// reports it in res.
func (res *SyncResult) collect(cache *store.Store, next *state.State, tree []bundle.Blob) {
	c, err := collectCache(cache, next, tree)
	res.CacheCollected = c
	if err != nil {
		res.CacheError = err.Error()
	}
}

// Errors of Sync that callers branch on.
var (
	// ErrReceipt: the --since receipt cannot be used.
	ErrReceipt = errors.New("unusable receipt")
	// ErrSync: the run failed before a bundle was complete; the state is
	// unchanged and the cache keeps what was verified.
	ErrSync = errors.New("sync failed")
)

// Sync runs `mirror sync`: resolve every source, download and verify in
// parallel into the cache, write the next bundle and record it in the state.
// A rejected package is reported in the result (the command exits 3); an
// error means no bundle was recorded.
func Sync(ctx context.Context, cfg *Config, opt SyncOptions) (*SyncResult, error) {
	start := time.Now()
	if opt.Progress == nil {
		opt.Progress = NopProgress{}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	jobs := cfg.Jobs
	if opt.Jobs > 0 {
		jobs = min(opt.Jobs, MaxJobs)
	}
	if jobs < 1 {
		jobs = DefaultJobs()
	}
	if opt.MaxFileSize <= 0 {
		opt.MaxFileSize = int64(cfg.MaxFileSize)
	}
	if opt.MaxFileSize <= 0 {
		opt.MaxFileSize = MaxPackageSize
	}
	now := opt.Now()

	if err := os.MkdirAll(cfg.Output.State, 0o755); err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	lk, err := lock.Acquire(cfg.Output.State)
	if err != nil {
		return nil, err
	}
	defer lk.Release()

	r := &run{cfg: cfg, opt: opt, now: now, jobs: jobs}
	var keyProblem string
	if err := r.checkKey(); err != nil {
		if !opt.DryRun {
			return nil, err
		}
		keyProblem = err.Error() // a dry run signs nothing: reported, not fatal
	}

	// The state is read on the other core while the package lists that
	// do not depend on it are made (local listings, sources without a
	// checksum list: prepare); its errors still come first.
	var st *state.State
	loaded := make(chan error, 1)
	go func() {
		var err error
		st, err = state.Load(cfg.Output.State)
		loaded <- err
	}()
	r.prepare()
	if err := <-loaded; err != nil {
		return nil, err
	}
	var receipt *repo.Receipt
	if opt.Since != "" {
		if receipt, err = readReceipt(opt.Since, st); err != nil {
			return nil, err
		}
	}
	cache, err := store.Open(filepath.Join(cfg.Output.State, CacheDir))
	if err != nil {
		return nil, err
	}
	// Downloads enter the cache without an fsync each (AdoptBatched) and
	// are made durable together (cache.Sync below). A run killed before
	// that leaves a marker: the blobs it may have left torn are re-hashed
	// here, and the damaged ones removed (fetched again by this run).
	if _, err := cache.Recover(ctx); err != nil {
		return nil, fmt.Errorf("%w: cache left by an interrupted run: %w", ErrSync, err)
	}
	partial := filepath.Join(cfg.Output.State, PartialDir)
	if err := os.MkdirAll(partial, 0o755); err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	trustText, policy, err := loadTrust(cfg)
	if err != nil {
		return nil, err
	}

	r.st, r.cache, r.present, r.partial, r.policy = st, cache, cache.Index(), partial, policy
	r.records = newRecords(st.Upstreams, func(a, b state.Upstream) bool { return a == b })
	r.verified = newRecords(st.Verified, sameVerdict)
	r.smalls = map[string][]byte{}
	r.trustSHA = sha256Hex([]byte(trustText))
	res := &SyncResult{DryRun: opt.DryRun, KeyProblem: keyProblem}

	opt.Progress.Stage("resolve", len(cfg.Sources))
	var items []*item
	for i := range cfg.Sources {
		its, rej, err := r.resolve(ctx, &cfg.Sources[i])
		if err != nil {
			return nil, err
		}
		items = append(items, its...)
		for _, pr := range rej {
			res.Packages = append(res.Packages, pr)
			opt.Progress.Package(pr)
		}
	}

	hook("resolved")
	opt.Progress.Stage("fetch", len(items))
	if err := r.pipeline(ctx, items); err != nil {
		return nil, err
	}
	if err := r.publishApt(ctx, items); err != nil {
		return nil, err
	}
	r.keepLastGood(items)
	// One syncfs for every blob adopted in this run. It runs while the
	// bundle is written (which re-hashes every blob it carries, so it never
	// needs the cache to be durable) and is waited for before the state
	// records anything that points into the cache: the disk writes of the
	// cache overlap the bundle's CPU work.
	cacheSynced := make(chan error, 1)
	go func() { cacheSynced <- cache.Sync() }()
	var syncErr error
	syncWaited := false
	waitCache := func() error {
		if !syncWaited {
			syncWaited = true
			if err := <-cacheSynced; err != nil {
				syncErr = fmt.Errorf("%w: %w", ErrSync, err)
			}
		}
		return syncErr
	}
	defer waitCache() // no syncfs left running behind a returned error
	res.Packages = slices.Grow(res.Packages, len(items))
	for _, it := range items {
		pr := it.result(st)
		res.Packages = append(res.Packages, pr)
		res.BytesDownloaded += it.downloaded
		if opt.DryRun && it.needFetch {
			res.ToFetch++
			if rec, ok := st.Upstreams[it.pkg.URL]; ok {
				res.BytesToFetch += rec.Size
			} else if it.size > 0 {
				res.BytesToFetch += it.size // from the signed index (apt)
			} else {
				res.UnknownSize++
			}
		}
	}
	slices.SortFunc(res.Packages, func(a, b PackageResult) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, p := range res.Packages {
		switch p.Status {
		case StatusNew:
			res.New++
		case StatusUnchanged:
			res.Unchanged++
		case StatusRejected:
			res.Rejected++
		}
	}
	if opt.DryRun {
		res.Elapsed = time.Since(start)
		return res, nil
	}

	// next shares the shipped set with st until a bundle is recorded (a
	// run with nothing new only saves it, and copying 40,000 entries for
	// that is waste): cloned right before next.Record.
	next := &state.State{Format: st.Format, Sequence: st.Sequence, Bundle: st.Bundle, Digest: st.Digest, Shipped: st.Shipped}
	for _, p := range res.Packages {
		if p.Status == StatusRejected {
			r.carryVerified(p.Source + ":" + p.Name)
		}
	}
	// What was seen upstream is what this run verified: URLs no longer in
	// the configuration (or rejected now) drop out, so the records stay
	// bounded by the package set; the verdicts of packages not seen are
	// kept for a while (carryMarks), as rollback marks. next's records and
	// verdicts, and whether they are the state's (saveUpstreams, when no
	// bundle is made), are made on the other core while the manifest and
	// its digest are made; next is not touched until unchanged is
	// received. A state read from an older format is written in the
	// current one once, even with nothing else to record.
	unchanged := make(chan bool, 1)
	go func() {
		var sameUpstreams, sameVerdicts bool
		r.carryMarks() // the manifest does not read r.verified
		next.Upstreams, sameUpstreams = r.records.result()
		next.Verified, sameVerdicts = r.verified.result()
		unchanged <- st.Format == state.Format && sameUpstreams && sameVerdicts
	}()
	m, digest, err := r.manifest(items, res, trustText)
	if err != nil {
		return nil, err
	}
	// all (every blob of the tree, sorted) is built only when a bundle is
	// made: a run with nothing new needs only the tree's unshipped sums.
	var all []bundle.Blob
	var carry []string
	switch {
	case receipt != nil:
		m.BaseSequence = receipt.Sequence
		have := make(map[string]bool, len(receipt.Blobs))
		for _, b := range receipt.Blobs {
			have[b] = true
		}
		all = treeBlobs(m.Tree)
		carry = state.Missing(blobSums(all), func(b string) bool { return have[b] })
	case opt.Full || st.Sequence == 0:
		all = treeBlobs(m.Tree)
		carry = blobSums(all)
	default:
		m.BaseSequence = st.Sequence
		carry = st.Missing(treeSums(m.Tree))
	}
	if len(m.Tree) == 0 {
		// Every package was rejected: there is nothing to publish.
		if err := waitCache(); err != nil {
			return nil, err
		}
		res.Elapsed = time.Since(start)
		if err := r.saveUpstreams(next, <-unchanged); err != nil {
			return nil, err
		}
		r.sweepPartials(items)
		return res, nil
	}
	if !opt.Full && receipt == nil && len(carry) == 0 && digest == st.Digest {
		res.NothingNew = true
		if err := waitCache(); err != nil {
			return nil, err
		}
		res.Elapsed = time.Since(start)
		if err := r.saveUpstreams(next, <-unchanged); err != nil {
			return nil, err
		}
		r.sweepPartials(items)
		return res, nil
	}
	if all == nil {
		all = treeBlobs(m.Tree)
	}
	m.Blobs = pickBlobs(all, carry)
	// Packages whose paths no import could serve were refused one by one;
	// what is left to catch here (two paths equal when case is ignored,
	// say) fails the run rather than make a bundle import refuses.
	if err := CheckPublishable(m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSync, err)
	}

	key, err := r.operatorKey()
	if err != nil {
		return nil, err
	}
	m.Sequence = st.Sequence + 1
	name := BundleName(m.Sequence)
	if err := setAsideOrphans(cfg.Output.Dir, name, now); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Output.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("output folder: %w", err)
	}
	opt.Progress.Stage("bundle", len(m.Blobs))
	total := m.TotalBlobSize()
	w, err := bundle.Write(ctx, cfg.Output.Dir, name, m, key.Minisign, r.openBlob, bundle.Options{Level: opt.Level, MaxPartSize: int64(cfg.Output.MaxPartSize),
		Progress: func(_ int, done int64) { opt.Progress.BundleBytes(done, total) }})
	if err != nil {
		// A cached blob that no longer has its hash (disk trouble, someone
		// editing the cache), or a link in its place, is dropped, so the
		// next run fetches and verifies it again instead of failing the same
		// way forever.
		var be *bundle.BlobError
		if errors.As(err, &be) && (errors.Is(err, bundle.ErrHashMismatch) || errors.Is(err, syscall.ELOOP)) {
			if rerr := cache.Remove(be.SHA256); rerr == nil {
				err = fmt.Errorf("%w (the damaged cached copy was removed; the next run fetches it again)", err)
			}
		}
		return nil, fmt.Errorf("%w: write bundle %s: %w", ErrSync, name, err)
	}
	hook("bundle-written")
	// The bundle and its signature are complete and synced: only now is
	// anything recorded as shipped.
	if err := waitCache(); err != nil {
		return nil, unrecorded(cfg.Output.State, w.Paths, name, m.Sequence, digest, err)
	}
	<-unchanged // next's records and verdicts are made
	next.Shipped = maps.Clone(st.Shipped)
	next.Record(m.Sequence, carry)
	next.Bundle = name + bundle.Suffix
	next.Digest = digest
	if err := next.Save(cfg.Output.State); err != nil {
		return nil, unrecorded(cfg.Output.State, w.Paths, name, m.Sequence, digest, fmt.Errorf("%w: %w", ErrSync, err))
	}
	hook("state-saved")
	res.collect(cache, next, all)
	r.sweepPartials(items)
	res.Bundle = &BundleResult{Path: w.Paths[0], Paths: w.Paths, Size: w.Size, BLAKE2b512: w.BLAKE2b512, SHA256: w.SHA256,
		Sequence: m.Sequence, BaseSequence: m.BaseSequence, Blobs: len(m.Blobs), BlobBytes: total}
	res.Elapsed = time.Since(start)
	return res, nil
}

// unrecorded handles a bundle written whose state could not be saved (a
// full disk, an I/O error): unless the state on disk records it after all
// (Save failed after its rename), its files are removed. Left in place, a
// copy job could ship a bundle that nothing records, and the next run
// writes another one under the same sequence, which the inside refuses as
// a replay; on a full disk it would also keep the next run from fitting.
func unrecorded(stateDir string, paths []string, name string, seq uint64, digest string, cause error) error {
	if st, err := state.Load(stateDir); err == nil && st.Sequence == seq && st.Digest == digest {
		return fmt.Errorf("bundle %s was written and the state records it, but saving the state reported: %w", name, cause)
	}
	var failed error
	for _, p := range slices.Backward(paths) { // the signature first
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			failed = errors.Join(failed, err)
		}
	}
	if failed == nil && len(paths) > 0 {
		failed = atomicfile.SyncDir(filepath.Dir(paths[0]))
	}
	if failed != nil {
		return fmt.Errorf("bundle %s was written but not recorded, and removing it failed (%v); the next run sets it aside and writes sequence %d again: %w", name, failed, seq, cause)
	}
	return fmt.Errorf("bundle %s was written but not recorded, so it was removed; the next run writes sequence %d again: %w", name, seq, cause)
}

// BundleName is the file name (without bundle.Suffix) of bundle seq.
func BundleName(seq uint64) string { return fmt.Sprintf("mirror-%06d", seq) }

// setAsideOrphans renames the files of a bundle that a killed run left under
// the name of a sequence the state never recorded: that bundle was never
// claimed as shipped and its sequence is reused now. They are renamed, not
// deleted (NAME.unrecorded-UNIXTIME.tar.zst...), in case the state folder was
// lost rather than a run killed.
func setAsideOrphans(dir, name string, now time.Time) error {
	matches, err := filepath.Glob(filepath.Join(dir, name+bundle.Suffix+"*"))
	if err != nil {
		return err
	}
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), name)
		to := filepath.Join(dir, fmt.Sprintf("%s.unrecorded-%d%s", name, now.Unix(), rest))
		if err := os.Rename(m, to); err != nil {
			return fmt.Errorf("set aside unrecorded bundle %s left by an interrupted run: %w", m, err)
		}
	}
	return nil
}

func readReceipt(path string, st *state.State) (*repo.Receipt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReceipt, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, repo.MaxReceiptSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrReceipt, path, err)
	}
	if int64(len(data)) > repo.MaxReceiptSize {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrReceipt, path, repo.MaxReceiptSize)
	}
	rc, err := repo.ParseReceipt(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrReceipt, path, err)
	}
	if rc.Sequence > st.Sequence {
		return nil, fmt.Errorf("%w: %s: says sequence %d was imported, but this state has made only %d bundles; is it from another mirror's state?", ErrReceipt, path, rc.Sequence, st.Sequence)
	}
	return rc, nil
}

// checkKey finds, before anything is fetched, what would otherwise stop
// the run only when it signs: a missing or damaged key file, an unencrypted
// key that Load refuses (it is loaded now, in a few milliseconds), and for
// an encrypted key a missing, damaged or foreign operator.asc (compared
// with operator.pub, no decryption: operator.CheckPublic), a passphrase
// file or variable that cannot be read (kept for operatorKey), or none at
// all when there is no opt.Passphrase to ask.
// An encrypted key is decrypted only before the first package download
// (unlockKey, with a passphrase read here) or when something is to be
// signed (the terminal is asked then): scrypt's CPU and memory, and a
// prompt, are not spent on a run with nothing to download.
func (r *run) checkKey() error {
	path := r.cfg.Operator.Key
	enc, err := operator.NeedsPassphrase(path)
	if err != nil {
		return fmt.Errorf("operator key: %w", err) // names the file
	}
	if !enc {
		_, err := r.loadKey(false)
		return err
	}
	if err := operator.CheckPublic(path); err != nil {
		return fmt.Errorf("operator key: %w", err) // names the file
	}
	p, err := operator.Passphrase(os.Getenv, r.cfg.Operator.PassphraseFile)
	switch {
	case err == nil:
		r.pass = p
	case errors.Is(err, operator.ErrNoPassphrase) && r.opt.Passphrase != nil:
		// No file or variable: the terminal is asked at signing time.
	default:
		return fmt.Errorf("operator key %s: %w", path, err)
	}
	return nil
}

// operatorKey returns the run's operator key, loading it on first use.
func (r *run) operatorKey() (*operator.Key, error) {
	if r.key != nil {
		// Loaded once per run: apt indexes and the bundle both need it.
		return r.key, nil
	}
	enc, err := operator.NeedsPassphrase(r.cfg.Operator.Key)
	if err != nil {
		// The error names the file.
		return nil, fmt.Errorf("operator key: %w", err)
	}
	return r.loadKey(enc)
}

// loadKey loads the operator key, which NeedsPassphrase found encrypted or
// not, and keeps it for the run. An encrypted key takes the passphrase
// checkKey read, else asks for it (opt.Passphrase, or the file and
// variables).
func (r *run) loadKey(enc bool) (*operator.Key, error) {
	path := r.cfg.Operator.Key
	var pass []byte
	var err error
	if enc {
		// Decrypting takes scrypt's memory (128 MiB with keygen's
		// limits) on top of the run's heap: give the run's garbage back
		// to the system first and scrypt's buffer right after, so the
		// peak is the live heap plus scrypt, not plus both's garbage.
		debug.FreeOSMemory()
		defer debug.FreeOSMemory()
		get := r.opt.Passphrase
		if get == nil {
			get = func() ([]byte, error) { return operator.Passphrase(os.Getenv, r.cfg.Operator.PassphraseFile) }
		}
		if r.pass != nil {
			pass, r.pass = r.pass, nil
		} else if pass, err = get(); err != nil {
			return nil, fmt.Errorf("operator key %s: %w", path, err)
		}
	}
	k, err := operator.Load(path, pass)
	if err != nil {
		// The error names the file (the key, or operator.asc beside it).
		return nil, fmt.Errorf("operator key: %w", err)
	}
	r.key = k
	return k, nil
}

// saveUpstreams records what was verified in this run (cache bookkeeping,
// no claim of shipping) when no bundle was needed, unless unchanged (next
// records what the state does, in its format).
func (r *run) saveUpstreams(next *state.State, unchanged bool) error {
	if unchanged {
		return nil
	}
	return next.Save(r.cfg.Output.State)
}

// sameVerdict compares two remembered verdicts field by field (a typed
// reflect.DeepEqual: the no-op run compares 20,000 of them).
func sameVerdict(a, b state.Verified) bool {
	return a.File == b.File && a.Sigs == b.Sigs && a.Trust == b.Trust && a.At.Equal(b.At) && a.At.Location() == b.At.Location() && a.Signed.Equal(b.Signed) &&
		slices.Equal(a.Keys, b.Keys) && maps.Equal(a.Schemes, b.Schemes)
}

func blobSums(bs []bundle.Blob) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.SHA256
	}
	return out
}

func treeSums(tree []bundle.Entry) []string {
	out := make([]string, len(tree))
	for i, e := range tree {
		out[i] = e.SHA256
	}
	return out
}

func pickBlobs(all []bundle.Blob, sums []string) []bundle.Blob {
	want := make(map[string]bool, len(sums))
	for _, s := range sums {
		want[s] = true
	}
	out := []bundle.Blob{}
	for _, b := range all {
		if want[b.SHA256] {
			out = append(out, b)
		}
	}
	return out
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// client is the fetch client of a source.
func (r *run) client(src *SourceConfig) (*fetch.Client, error) {
	o := r.opt.Fetch
	if src.Timeout > 0 {
		o.Timeout = src.Timeout
	}
	if src.CAFile != "" {
		o.CAFile = src.CAFile
	}
	if src.UserAgent != "" {
		o.UserAgent = src.UserAgent
	}
	o.NoPipelining = o.NoPipelining || src.NoPipelining
	prog := r.opt.Progress
	o.Progress = prog.Bytes
	c, err := fetch.New(o)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", src.Name, err)
	}
	return c, nil
}
