package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/mirror/fetch"
	"github.com/mirror-tool/mirror/mirror/repo"
	"github.com/mirror-tool/mirror/mirror/source/files"
	"github.com/mirror-tool/mirror/mirror/state"
	"github.com/mirror-tool/mirror/mirror/store"
	"github.com/mirror-tool/mirror/verify"
)

// run is the working state of one Sync.
type run struct {
	cfg     *Config
	opt     SyncOptions
	st      *state.State
	cache   *store.Store
	present *store.Index // cache.Index(): fetchItem's "is it cached?"
	partial string
	policy  *verify.Policy
	now     time.Time
	jobs    int

	mu       sync.Mutex
	records  *records[state.Upstream] // verified upstream content seen in this run
	smalls   map[string][]byte        // verified signatures by SHA-256, for the bundle
	verified *records[state.Verified] // accepted verdicts of this run
	trustSHA string
	extras   []extra  // checksum lists and their signatures
	apt      []aptRun // apt sources' selections (sync_apt.go)
	items    []*item  // the pipeline's items (sigData)
	sigOnce  sync.Once
	sigIndex map[string][]byte // accepted items' signatures by SHA-256, made on first use
	sigsHeld atomic.Int64      // bytes of accepted signatures held in memory (holdSigs)
	key      *operator.Key     // the operator key, once loaded (operatorKey)
	pass     []byte            // an encrypted key's passphrase, read at the start (checkKey)
	// pre holds what prepare made of the files sources (read-only after).
	pre map[*SourceConfig]*prepared
}

// prepared is what resolve needs of a files source that does not depend on
// the state, made by prepare while the state is read: the client, the
// local listing and, without a checksum list, the package list.
type prepared struct {
	client  *fetch.Client
	listing []string
	pkgs    []files.Package // with a checksum list: not made (its files depend on the list)
	rej     []files.Rejected
	clash   bool // pkgs' paths clash: resolve settles it with the state (settleClashes)
	// err is the first error of the above, returned by resolve where it
	// would have happened (after the state's and the trust table's).
	err error
}

// prepare makes the prepared part of every files source whose listing is
// not a URL (a download waits for the state, as it did).
func (r *run) prepare() {
	r.pre = map[*SourceConfig]*prepared{}
	for i := range r.cfg.Sources {
		src := &r.cfg.Sources[i]
		if src.Apt != nil {
			continue
		}
		if _, isURL := src.Files.ListingURL(); isURL {
			continue
		}
		p := &prepared{}
		r.pre[src] = p
		if p.client, p.err = r.client(src); p.err != nil {
			continue
		}
		if src.Files.Listing != "" {
			// Only a local file is read: nothing here uses the network.
			if p.listing, p.err = r.listing(context.Background(), p.client, src); p.err != nil {
				continue
			}
		}
		if src.Files.Checksums == "" {
			p.pkgs, p.rej, p.err = src.Files.Packages(p.listing, nil, "")
			p.pkgs, p.rej, p.clash = servable(p.pkgs, p.rej)
		}
	}
}

// small is a small upstream document (signature, checksum list) in memory.
type small struct {
	url     string
	path    string // publish path
	sha     string
	data    []byte // nil once moved to the cache (holdSigs)
	size    int64
	changed bool // differs from what the state recorded (or nothing recorded)
	v       fetch.Validators
}

// extra is a publish-tree entry that is not a package (a checksum list or
// its signature), shipped when at least one package of its source uses it.
type extra struct {
	source string
	path   string
	sha    string
	size   int64
	used   *bool
}

// item is one package going through the pipeline.
type item struct {
	src    *SourceConfig
	client *fetch.Client
	pkg    files.Package
	// For packages from a signed checksum list: the verdict already made
	// on the list, and the list (+ signature) as the package's signatures.
	fromList *listInfo
	sigs     []small
	presigs  [][]byte // signature bodies prefetched with pipelining; nil: not (yet) fetched
	kept     *kept    // refused, and its last verified version stays published (keepLastGood)
	size     int64    // the size the signed index gives, 0 when unknown (apt)

	partialPath string
	fromCache   bool
	needFetch   bool
	downloaded  int64
	fileSHA     string
	fileSize    int64
	rejected    string
	keys        []string
	schemes     map[string]string // signature file name (sigName) → scheme
	sigsDigest  string            // sigsSum
	shipped     int8              // result's look-up of fileSHA in the state's Shipped: 0 not made yet, 1 not shipped, 2 shipped
}

// listInfo is a verified checksum list of a source.
type listInfo struct {
	sigs []bundle.PackageSignature
	used bool
	what string // for messages; "" is "the signed checksum list"
}

func (it *item) full() string { return it.src.Name + ":" + it.pkg.Name }

func (it *item) result(st *state.State) PackageResult {
	pr := PackageResult{Source: it.src.Name, Name: it.pkg.Name, Size: it.fileSize, SHA256: it.fileSHA,
		Fetched: it.partialPath != "" && it.rejected == ""}
	switch {
	case it.rejected != "":
		pr.Status, pr.Reason = StatusRejected, it.rejected
		pr.Fetched = false
	case it.fileSHA == "":
		pr.Status = StatusNew // dry run: would be fetched
	default:
		// Looked up once: verifyDone reports the item, Sync collects it.
		if it.shipped == 0 {
			it.shipped = 1
			if _, ok := st.Shipped[it.fileSHA]; ok {
				it.shipped = 2
			}
		}
		if it.shipped == 2 {
			pr.Status = StatusUnchanged
		} else {
			pr.Status = StatusNew
		}
	}
	return pr
}

func (r *run) keepSmall(sum string, data []byte) {
	r.mu.Lock()
	r.smalls[sum] = data
	r.mu.Unlock()
}

// openBlob opens a blob for the bundle writer: a signature kept in memory,
// or the cache.
func (r *run) openBlob(sum string) (io.ReadCloser, error) {
	r.mu.Lock()
	data, ok := r.smalls[sum]
	r.mu.Unlock()
	if !ok {
		data, ok = r.sigData(sum)
	}
	if ok {
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	return r.cache.Open(sum)
}

// sigData returns the signature with SHA-256 sum of an accepted item. The
// index is made when the bundle writer first asks, not during the pipeline:
// a run with nothing new never needs it.
func (r *run) sigData(sum string) ([]byte, bool) {
	r.sigOnce.Do(func() {
		r.sigIndex = map[string][]byte{}
		for _, it := range r.items {
			if it.rejected != "" {
				continue
			}
			for _, s := range it.sigs {
				if s.data != nil {
					r.sigIndex[s.sha] = s.data
				}
			}
		}
	})
	d, ok := r.sigIndex[sum]
	return d, ok
}

func (r *run) record(u string, rec state.Upstream) {
	r.mu.Lock()
	r.records.put(u, rec)
	r.mu.Unlock()
}

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
	g := repo.NewTreeGuard(2 * n)
	g.Repeats = true
	return g
}

// carryRecord keeps the state's record of u in the next state (and so its
// blob in the cache) unless this run recorded u itself.
func (r *run) carryRecord(u string) {
	r.mu.Lock()
	r.records.carry(u)
	r.mu.Unlock()
}

func rejected(src *SourceConfig, name, reason string) PackageResult {
	return PackageResult{Source: src.Name, Name: name, Status: StatusRejected, Reason: reason}
}

// resolve turns a source into pipeline items, and the files that are
// rejected before any download (not in the signed list, list signer not
// allowed for them).
func (r *run) resolve(ctx context.Context, src *SourceConfig) ([]*item, []PackageResult, error) {
	if src.Apt != nil {
		return r.resolveApt(ctx, src)
	}
	fc := src.Files
	var client *fetch.Client
	var listing []string
	pre := r.pre[src]
	if pre != nil {
		if pre.err != nil {
			return nil, nil, pre.err
		}
		client, listing = pre.client, pre.listing
	} else {
		var err error
		if client, err = r.client(src); err != nil {
			return nil, nil, err
		}
		if fc.Listing != "" {
			if listing, err = r.listing(ctx, client, src); err != nil {
				return nil, nil, err
			}
		}
	}
	var rej []PackageResult
	var sums map[string]string
	var list *listInfo
	var listPath string
	var ev *verify.Evidence
	var listDocs []*small
	var listVerdict state.Verified
	var listKeyName string
	if fc.Checksums != "" {
		listURL, sigURL, dir := fc.ChecksumsURLs()
		listPath = fc.Publish(listURL)
		doc, err := r.getSmall(ctx, client, listURL, files.MaxChecksumsSize, true)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: source %q: checksum list: %w", ErrSync, src.Name, err)
		}
		doc.path = listPath
		var sig *small
		if sigURL != "" {
			s, err := r.getSmall(ctx, client, sigURL, verify.MaxSignatureSize, true)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: source %q: checksum list signature: %w", ErrSync, src.Name, err)
			}
			s.path = fc.Publish(sigURL)
			sig = &s
		}
		lk := listKey(src, listPath)
		plain, e, why := r.verifyList(ctx, doc, sig)
		if why == "" {
			if sums, err = files.ParseChecksums(plain, dir); err != nil {
				why = fmt.Sprintf("checksum list %s: %v", listPath, err)
			}
		}
		if why != "" {
			// Nothing from an unverifiable list is taken.
			r.carryVerified(lk)
			return nil, []PackageResult{rejected(src, fc.Checksums, why+"; none of its files were taken")}, nil
		}
		ev = e
		list = &listInfo{}
		scheme := evidenceScheme(ev, "openpgp")
		if sig != nil {
			list.sigs = []bundle.PackageSignature{{Path: doc.path, SHA256: doc.sha, Scheme: schemeChecksums}, {Path: sig.path, SHA256: sig.sha, Scheme: scheme}}
		} else {
			list.sigs = []bundle.PackageSignature{{Path: doc.path, SHA256: doc.sha, Scheme: scheme + suffixClearsigned}}
		}
		listDocs = []*small{&doc, sig}
		listVerdict = state.Verified{File: doc.sha, Sigs: listSigsDigest(doc, sig), Trust: r.trustSHA, Keys: validKeys(ev), At: r.now}
		r.carryVerified(lk) // replaced below when the list is used
		listKeyName = lk
	}
	var pkgs []files.Package
	var rj []files.Rejected
	if pre != nil && fc.Checksums == "" {
		pkgs, rj = pre.pkgs, pre.rej
		if pre.clash {
			pkgs, rj = r.settleClashes(src, pkgs, rj)
		}
	} else {
		var err error
		if pkgs, rj, err = fc.Packages(listing, sums, listPath); err != nil {
			return nil, nil, err
		}
		var clash bool
		if pkgs, rj, clash = servable(pkgs, rj); clash {
			pkgs, rj = r.settleClashes(src, pkgs, rj)
		}
	}
	for _, x := range rj {
		rej = append(rej, rejected(src, x.Name, x.Reason))
	}
	var items []*item
	// The list's signing time, for the rollback check, is the newest one
	// among the signatures that passed for a file taken: a key allowed
	// for none of them (another project's, say) cannot vouch for the
	// list's age with a fresh signature over an old list.
	var listSigned time.Time
	for _, p := range pkgs {
		it := &item{src: src, client: client, pkg: p}
		if list != nil {
			v := r.policy.Decide(it.full(), ev)
			if !v.Accepted {
				rej = append(rej, rejected(src, p.Name, fmt.Sprintf("checksum list %s: %v", listPath, v.Err)))
				continue
			}
			it.fromList = list
			it.keys = keyNames(v.Passed)
			if v.Signed.After(listSigned) {
				listSigned = v.Signed
			}
		}
		items = append(items, it)
	}
	if list != nil && len(items) > 0 {
		signed, why := r.notRolledBack(listKeyName, listVerdict.File, listSigned)
		if why != "" {
			// Nothing from a rolled-back list is taken (its mark was
			// carried above).
			return nil, []PackageResult{rejected(src, fc.Checksums, fmt.Sprintf("checksum list %s: %s; none of its files were taken", listPath, why))}, nil
		}
		listVerdict.Signed = signed
		// The list was accepted for at least one file: it enters the cache
		// (for conditional requests next time) and, when a file from it
		// passes its hash check, the publish tree; its signing time is the
		// mark for the next run's rollback check.
		r.mu.Lock()
		r.verified.put(listKeyName, listVerdict)
		r.mu.Unlock()
		for _, d := range listDocs {
			if d == nil {
				continue
			}
			if err := r.cache.Put(ctx, bytes.NewReader(d.data), d.sha, int64(len(d.data))); err != nil {
				return nil, nil, err
			}
			r.record(d.url, state.Upstream{SHA256: d.sha, Size: int64(len(d.data)), ETag: d.v.ETag, LastModified: d.v.LastModified})
			r.extras = append(r.extras, extra{source: src.Name, path: d.path, sha: d.sha, size: int64(len(d.data)), used: &list.used})
		}
	}
	return items, rej, nil
}

// verifyList checks a checksum list's signature (detached or clearsigned)
// and returns the signed text and the evidence, or why it cannot be used.
func (r *run) verifyList(ctx context.Context, doc small, sig *small) ([]byte, *verify.Evidence, string) {
	if sig != nil {
		ev, err := r.policy.Verify(ctx, bytes.NewReader(doc.data), []verify.Signature{{Name: path.Base(sig.path), Data: sig.data, File: path.Base(doc.path)}}, r.now)
		if err != nil {
			return nil, nil, fmt.Sprintf("checksum list %s: %v", doc.path, err)
		}
		return doc.data, ev, ""
	}
	if !files.IsClearsigned(doc.data) {
		return nil, nil, fmt.Sprintf("checksum list %s is not clearsigned and no checksums_signature is configured", doc.path)
	}
	plain, ev, err := r.policy.VerifyClearsigned(ctx, doc.data, r.now)
	if err != nil {
		return nil, nil, fmt.Sprintf("checksum list %s: %v", doc.path, err)
	}
	return plain, ev, ""
}

func evidenceScheme(ev *verify.Evidence, def string) string {
	if ev != nil {
		for _, res := range ev.Results {
			if res.Key.Scheme != "" {
				return res.Key.Scheme
			}
		}
	}
	return def
}

// validKeys names the keys that made a valid signature.
func validKeys(ev *verify.Evidence) []string {
	var out []string
	for _, res := range ev.Results {
		if res.Err == nil && !slices.Contains(out, res.Key.Name) {
			out = append(out, res.Key.Name)
		}
	}
	return out
}

func listSigsDigest(doc small, sig *small) string {
	if sig == nil {
		return sigsDigest([]small{doc})
	}
	return sigsDigest([]small{*sig})
}

func keyNames(refs []verify.KeyRef) []string {
	out := make([]string, 0, len(refs))
	for _, k := range refs {
		out = append(out, k.Name)
	}
	return out
}

// listing reads the source's listing: a local file or a URL.
func (r *run) listing(ctx context.Context, client *fetch.Client, src *SourceConfig) ([]string, error) {
	where, isURL := src.Files.ListingURL()
	var data []byte
	if isURL {
		body, _, _, err := client.Get(ctx, where, files.MaxListingSize, fetch.Validators{})
		if err != nil {
			return nil, fmt.Errorf("%w: source %q: listing: %w", ErrSync, src.Name, err)
		}
		data = body
	} else {
		f, err := os.Open(where)
		if err != nil {
			return nil, fmt.Errorf("source %q: listing: %w", src.Name, err)
		}
		data, err = io.ReadAll(io.LimitReader(f, files.MaxListingSize+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("source %q: listing %s: %w", src.Name, where, err)
		}
	}
	l, err := files.ParseListing(data)
	if err != nil {
		return nil, fmt.Errorf("source %q: listing %s: %w", src.Name, where, err)
	}
	return l, nil
}

// getSmall fetches a small document, conditionally when its last verified
// version is in the cache (a 304 answer reads it from there).
func (r *run) getSmall(ctx context.Context, c *fetch.Client, u string, max int64, conditional bool) (small, error) {
	rec, had := r.st.Upstreams[u]
	var prev fetch.Validators
	if conditional && had && (rec.ETag != "" || rec.LastModified != "") {
		if ok, _ := r.cache.Has(rec.SHA256); ok {
			prev = fetch.Validators{ETag: rec.ETag, LastModified: rec.LastModified}
		}
	}
	body, v, notModified, err := c.Get(ctx, u, max, prev)
	if err != nil {
		return small{}, err
	}
	s := small{url: u, v: v}
	if notModified {
		f, err := r.cache.Open(rec.SHA256)
		if err != nil {
			return small{}, err
		}
		body, err = io.ReadAll(io.LimitReader(f, max+1))
		f.Close()
		if err != nil {
			return small{}, err
		}
		if int64(len(body)) > max {
			return small{}, fmt.Errorf("cached copy of %s is larger than %d bytes", u, max)
		}
		s.data, s.sha, s.size = body, rec.SHA256, int64(len(body))
		return s, nil
	}
	return r.smallOf(u, body, v), nil
}

// smallOf is the small document body fetched from u.
func (r *run) smallOf(u string, body []byte, v fetch.Validators) small {
	s := small{url: u, v: v, data: body, sha: sha256Hex(body), size: int64(len(body))}
	rec, had := r.st.Upstreams[u]
	s.changed = !had || rec.SHA256 != s.sha
	return s
}

// pipeline downloads (a pool of r.jobs) and verifies (a pool of GOMAXPROCS,
// fed as downloads finish) every item. It returns the first fatal error
// (network failures other than 404, I/O errors); rejections are recorded in
// the items.
func (r *run) pipeline(ctx context.Context, items []*item) error {
	// Sized for what the items will record (a package and at least one
	// signature each), instead of growing 20,000-entry lists step by step.
	r.mu.Lock()
	r.records.grow(2 * len(items))
	r.verified.grow(len(items))
	r.items = items
	r.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	dl := make(chan *item)
	vq := make(chan *item, r.jobs)
	var dwg, vwg sync.WaitGroup
	for range r.jobs {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			// Each request's context derives from this worker's, not
			// from the shared ctx, so that registering and dropping it
			// does not contend with the other workers.
			wctx, wcancel := context.WithCancel(ctx)
			defer wcancel()
			for it := range dl {
				if err := r.fetchItem(wctx, it); err != nil {
					cancel(err)
					continue
				}
				if it.partialPath == "" {
					// Nothing downloaded (a cached file, a rejection, a
					// dry run): checked here, without the hand-over to
					// the verify pool, which is there to overlap the
					// checks of fresh downloads with the network.
					r.verifyDone(wctx, it, cancel)
					continue
				}
				vq <- it
			}
		}()
	}
	// The verify pool also adopts files into the cache (fsync), so it is
	// as wide as the download pool, never narrower than the CPUs.
	nv := max(r.jobs, runtimeProcs())
	for range nv {
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			for it := range vq {
				r.verifyDone(ctx, it, cancel)
			}
		}()
	}
	chunks := make(chan []*item, 1)
	go r.prefetch(ctx, items, chunks)
feed:
	for chunk := range chunks {
		for _, it := range chunk {
			select {
			case dl <- it:
			case <-ctx.Done():
				break feed
			}
		}
	}
	for range chunks {
		// The prefetcher stops at the cancellation; wait for it.
	}
	close(dl)
	dwg.Wait()
	close(vq)
	vwg.Wait()
	if err := context.Cause(ctx); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrSync, err)
	}
	return nil
}

// prefetchChunk is how many items prefetch handles at a time: the
// signatures of at most about four chunks are in memory at once (two being
// fetched, one waiting, one being worked on), each chunk's bounded by
// fetch.MaxManyBytes.
const prefetchChunk = 2048

// prefetch sends items to chunks, a chunk at a time and in order, after
// fetching the detached signatures of the chunk's packages with pipelining
// (fetch.GetMany) into each item's presigs; fetchItem fetches whatever
// GetMany left (nil) one request at a time, with retries. Two chunks are
// fetched at once, so that the server always has the next chunk's
// requests while the answers of one call's last connections come in (8
// connections, as many as the download pool's default). It stops early
// when ctx is done, and closes chunks.
func (r *run) prefetch(ctx context.Context, items []*item, chunks chan<- []*item) {
	defer close(chunks)
	// One channel per chunk, queued in order; the chunk is sent on it when
	// its signatures are in. The queue's room (1) and the chunk being
	// waited for make the two calls at once.
	queue := make(chan chan []*item, 1)
	go func() {
		defer close(queue)
		// The first chunks are small, so that the workers start early.
		size := 128
		for lo := 0; lo < len(items); lo += size {
			if lo > 0 {
				size = min(2*size, prefetchChunk)
			}
			chunk := items[lo:min(lo+size, len(items))]
			done := make(chan []*item, 1)
			select {
			case queue <- done:
			case <-ctx.Done():
				return
			}
			go func() {
				r.prefetchChunk(ctx, chunk)
				done <- chunk
			}()
		}
	}()
	for done := range queue {
		chunk := <-done
		select {
		case chunks <- chunk:
		case <-ctx.Done():
			for done := range queue {
				<-done // no GetMany left running
			}
			return
		}
	}
}

// prefetchChunk fetches the detached signatures of chunk's packages with
// GetMany into their presigs.
func (r *run) prefetchChunk(ctx context.Context, chunk []*item) {
	// Items come source by source: one GetMany per run of items sharing
	// a client.
	for i := 0; i < len(chunk); {
		j := i
		var urls []string
		for ; j < len(chunk) && chunk[j].client == chunk[i].client; j++ {
			for _, s := range chunk[j].pkg.Signatures {
				urls = append(urls, s.URL)
			}
		}
		if len(urls) > 0 {
			bodies := chunk[i].client.GetMany(ctx, urls, verify.MaxSignatureSize)
			for _, it := range chunk[i:j] {
				it.presigs, bodies = bodies[:len(it.pkg.Signatures)], bodies[len(it.pkg.Signatures):]
			}
		}
		i = j
	}
}

// verifyDone verifies a fetched item (unless the run is being cancelled) and
// reports it.
func (r *run) verifyDone(ctx context.Context, it *item, cancel context.CancelCauseFunc) {
	if ctx.Err() == nil {
		if err := r.verifyItem(ctx, it); err != nil {
			cancel(err)
			return
		}
	}
	if it.rejected != "" {
		dropSigs(it)
	}
	r.opt.Progress.Package(it.result(r.st))
}

// fetchItem fetches the signatures and, unless the cache holds the file,
// the file into a partial file.
func (r *run) fetchItem(ctx context.Context, it *item) error {
	unchanged := true
	for i, s := range it.pkg.Signatures {
		// Signatures are fetched whole: a 304 would save a few hundred
		// bytes, and a one-second Last-Modified could hide a change.
		var sm small
		var err error
		if i < len(it.presigs) && it.presigs[i] != nil {
			sm = r.smallOf(s.URL, it.presigs[i], fetch.Validators{})
		} else {
			sm, err = r.getSmall(ctx, it.client, s.URL, verify.MaxSignatureSize, false)
		}
		if reason := rejection(err); reason != "" {
			it.rejected = fmt.Sprintf("signature %s: %s", s.URL, reason)
			return nil
		}
		if err != nil {
			return fmt.Errorf("package %s: %w", it.full(), err)
		}
		sm.path = s.Path
		unchanged = unchanged && !sm.changed
		it.sigs = append(it.sigs, sm)
	}
	it.presigs = nil
	if want := it.pkg.SHA256; want != "" {
		// Whether the cache holds the file is asked of r.present (one
		// directory read per cache shard, not one lstat per package); a
		// file it does not hold (never fetched, or removed from the cache
		// since) is fetched below.
		if ok, _ := r.present.Has(want); ok {
			if fi, err := os.Stat(r.cache.Path(want)); err == nil {
				it.fromCache, it.fileSHA, it.fileSize = true, want, fi.Size()
				return nil
			}
		}
	} else if rec, ok := r.st.Upstreams[it.pkg.URL]; ok && unchanged && len(it.sigs) > 0 {
		// Signatures byte-identical to the last verified run: the file
		// they sign is taken from the cache (and verified again below).
		if ok, _ := r.present.Has(rec.SHA256); ok {
			it.fromCache, it.fileSHA, it.fileSize = true, rec.SHA256, rec.Size
			return nil
		}
	}
	it.needFetch = true
	if r.opt.DryRun {
		return nil
	}
	it.partialPath = r.partialFor(it.pkg.URL)
	limit := r.opt.MaxFileSize
	if it.size > 0 && it.size < limit {
		// The signed index says how large the file is: more is refused
		// as soon as it arrives (ErrTooLarge, a rejection).
		limit = it.size
	}
	res, err := it.client.Download(ctx, it.pkg.URL, it.partialPath, limit, -1)
	if reason := rejection(err); reason != "" {
		it.rejected = reason
		fetch.RemovePartial(it.partialPath)
		it.partialPath = ""
		return nil
	}
	if err != nil {
		return fmt.Errorf("package %s: %w", it.full(), err)
	}
	it.fileSHA, it.fileSize, it.downloaded = res.SHA256, res.Size, res.Size
	return nil
}

// rejection turns the fetch errors that are the upstream's answer about a
// file (missing, too large) into a rejection reason; "" for other errors.
func rejection(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, fetch.ErrNotFound):
		return "listed but missing upstream: " + err.Error()
	case errors.Is(err, fetch.ErrTooLarge):
		return err.Error()
	}
	return ""
}

func (r *run) partialFor(u string) string {
	return r.partial + "/" + sha256Hex([]byte(u))[:40]
}

// sweepPartials removes, after a successful run, the partial downloads (and
// side files) of URLs that are not in this run's package set: a partial
// stays for the next run to resume only while its package is wanted, so an
// upstream that renames files and cuts their downloads cannot fill the
// state folder. A file that cannot be removed is left for the next run.
func (r *run) sweepPartials(items []*item) {
	ents, err := os.ReadDir(r.partial)
	if err != nil || len(ents) == 0 {
		return
	}
	keep := make(map[string]bool, len(items))
	for _, it := range items {
		keep[filepath.Base(r.partialFor(it.pkg.URL))] = true
	}
	for _, e := range ents {
		if !keep[strings.TrimSuffix(e.Name(), fetch.MetaSuffix)] {
			os.Remove(filepath.Join(r.partial, e.Name()))
		}
	}
}

// verifyItem checks the file against its signatures or its signed checksum
// list; accepted content enters the cache, rejected content is deleted.
func (r *run) verifyItem(ctx context.Context, it *item) error {
	if it.rejected != "" || (r.opt.DryRun && !it.fromCache) {
		return nil
	}
	if r.opt.DryRun {
		return nil
	}
	reject := func(reason string) error {
		it.rejected = reason
		if it.partialPath != "" {
			fetch.RemovePartial(it.partialPath)
		}
		return nil
	}
	// A file from a signed checksum list must have the listed hash; a file
	// with detached signatures must be accepted by them; with both, both.
	if it.fromList != nil && it.fileSHA != it.pkg.SHA256 {
		what := it.fromList.what
		if what == "" {
			what = "the signed checksum list"
		}
		return reject(fmt.Sprintf("SHA-256 %s differs from %s in %s", it.fileSHA, it.pkg.SHA256, what))
	}
	var verdict state.Verified
	remembered := false
	if len(it.sigs) > 0 {
		var sigKeys []string
		if v, ok := r.reusable(it); ok {
			sigKeys, it.schemes = v.Keys, v.Schemes
			verdict, remembered = r.verdict(it, sigKeys, v.At, v.Signed), true
		} else {
			var f *os.File
			var err error
			if it.partialPath != "" {
				f, err = os.Open(it.partialPath)
			} else {
				f, err = r.cache.Open(it.fileSHA) // no link followed
				if errors.Is(err, syscall.ELOOP) {
					err = fmt.Errorf("%w: a link stands in the cache for %s: %w", ErrSync, it.fileSHA, err)
					if rerr := r.cache.Remove(it.fileSHA); rerr == nil {
						err = fmt.Errorf("%w (it was removed; the next run fetches the file again)", err)
					}
				}
			}
			if err != nil {
				return fmt.Errorf("package %s: %w", it.full(), err)
			}
			sigs := make([]verify.Signature, len(it.sigs))
			for i, s := range it.sigs {
				sigs[i] = verify.Signature{Name: sigName(s.url), Data: s.data, File: path.Base(it.pkg.Name)}
			}
			// A file taken from the cache is hashed while it is checked: a
			// copy damaged on disk is the cache's fault, not the upstream's.
			var rd io.Reader = f
			var h hash.Hash
			if it.partialPath == "" {
				h = sha256.New()
				rd = io.TeeReader(f, h)
			}
			ev, err := r.policy.Verify(ctx, rd, sigs, r.now)
			if err == nil && h != nil {
				if _, err = io.Copy(io.Discard, rd); err == nil && hex.EncodeToString(h.Sum(nil)) != it.fileSHA {
					err = fmt.Errorf("%w: the cached copy of %s is damaged", ErrSync, it.full())
					if rerr := r.cache.Remove(it.fileSHA); rerr == nil {
						err = fmt.Errorf("%w (it was removed; the next run fetches it again)", err)
					}
				}
			}
			f.Close()
			if err != nil {
				return fmt.Errorf("package %s: %w", it.full(), err)
			}
			v := r.policy.Decide(it.full(), ev)
			if !v.Accepted {
				return reject(v.Err.Error())
			}
			signed, why := r.notRolledBack(it.full(), it.fileSHA, v.Signed)
			if why != "" {
				return reject(why)
			}
			sigKeys = keyNames(v.Passed)
			it.schemes = map[string]string{}
			for _, res := range ev.Results {
				if res.Key.Scheme != "" && it.schemes[res.Signature] == "" {
					it.schemes[res.Signature] = res.Key.Scheme
				}
			}
			verdict, remembered = r.verdict(it, sigKeys, r.now, signed), true
		}
		for _, k := range sigKeys {
			if !slices.Contains(it.keys, k) {
				it.keys = append(it.keys, k)
			}
		}
	}
	if it.partialPath != "" {
		// Durable at the run's cache.Sync, before anything records it.
		if err := r.cache.AdoptBatched(it.partialPath, it.fileSHA, it.fileSize); err != nil {
			return fmt.Errorf("package %s: %w", it.full(), err)
		}
		hook("adopted")
	}
	// Signatures are fetched whole every run, so they stay in memory for
	// the bundle (no cache write, no fsync per signature; sigData). One
	// lock for the item's records and verdict (a verdict recorded for a
	// run that then fails is never saved).
	var key string
	if remembered {
		key = it.full()
	}
	r.mu.Lock()
	if remembered {
		r.verified.put(key, verdict)
	}
	for _, s := range it.sigs {
		r.records.put(s.url, state.Upstream{SHA256: s.sha, Size: s.size})
	}
	r.records.put(it.pkg.URL, state.Upstream{SHA256: it.fileSHA, Size: it.fileSize})
	if it.fromList != nil {
		it.fromList.used = true
	}
	r.mu.Unlock()
	return r.holdSigs(ctx, it)
}

// maxHeldSigs bounds the bytes of accepted signatures a run holds in memory
// for the bundle; past it, they go to the cache. Signatures are small (a few
// hundred bytes), but a hostile mirror can pad a valid one (OpenPGP's
// unhashed subpackets, up to verify.MaxSignatureSize; minisign's untrusted
// comment, to 1 KiB) for each of 200,000 packages. A variable for tests.
var maxHeldSigs int64 = 64 << 20

// holdSigs keeps an accepted item's signatures in memory for the bundle
// while the run holds less than maxHeldSigs of them, and moves the others
// into the cache (where openBlob finds them; the records, which point to
// them, keep them there).
func (r *run) holdSigs(ctx context.Context, it *item) error {
	for i := range it.sigs {
		s := &it.sigs[i]
		if r.sigsHeld.Add(s.size) <= maxHeldSigs {
			continue
		}
		if err := r.cache.PutBatched(ctx, bytes.NewReader(s.data), s.sha, s.size); err != nil {
			return fmt.Errorf("package %s: %w", it.full(), err)
		}
		s.data = nil
		r.sigsHeld.Add(-s.size)
	}
	return nil
}

// dropSigs lets go of a refused item's signatures: nothing needs them.
func dropSigs(it *item) {
	for i := range it.sigs {
		it.sigs[i].data = nil
	}
}

// sigsDigest identifies a package's signature files: the SHA-256 of a
// line "URL SHA256" per signature.
func sigsDigest(sigs []small) string {
	d := sigsDigestHex(sigs)
	return string(d[:])
}

// sigsDigestHex is sigsDigest as hex digits in an array: a package's
// signature lines are hashed from one small buffer (on the stack for the
// usual one or two signatures), and nothing is allocated.
func sigsDigestHex(sigs []small) [2 * sha256.Size]byte {
	var stack [512]byte
	b := stack[:0]
	for _, s := range sigs {
		b = append(b, s.url...)
		b = append(b, ' ')
		b = append(b, s.sha...)
		b = append(b, '\n')
	}
	sum := sha256.Sum256(b)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return out
}

// sigsSum is sigsDigest(it.sigs), computed once (reusable and remember
// both need it).
func (it *item) sigsSum() string {
	if it.sigsDigest == "" {
		it.sigsDigest = sigsDigest(it.sigs)
	}
	return it.sigsDigest
}

// sigsAre reports whether it's signatures have the digest want, without
// allocating; when they do, want becomes the item's sigsSum (shared with
// the remembered verdict instead of a copy per package).
func (it *item) sigsAre(want string) bool {
	if it.sigsDigest != "" {
		return it.sigsDigest == want
	}
	d := sigsDigestHex(it.sigs)
	if string(d[:]) != want {
		return false
	}
	it.sigsDigest = want
	return true
}

// reusable returns the remembered verdict for a cached file when it still
// holds: same file, signatures and trust table, only time-independent
// schemes (minisign, SSH: no key expiry of their own), and no trust-table
// window boundary passed since it was made.
func (r *run) reusable(it *item) (state.Verified, bool) {
	if !it.fromCache || len(it.sigs) == 0 {
		return state.Verified{}, false
	}
	// A remembered verdict spares only the check of a file that an earlier
	// bundle carried, and only in a delta: whatever this run's bundle
	// carries is verified by this run, so a verdict written into the
	// state folder by someone else cannot put a file into a bundle.
	if r.opt.Full || r.opt.Since != "" {
		return state.Verified{}, false
	}
	if _, shipped := r.st.Shipped[it.fileSHA]; !shipped {
		return state.Verified{}, false
	}
	v, ok := r.st.Verified[it.full()]
	if !ok || v.File != it.fileSHA || !it.sigsAre(v.Sigs) || v.Trust != r.trustSHA || len(v.Keys) == 0 || r.now.Before(v.At) {
		return state.Verified{}, false
	}
	for _, s := range v.Schemes {
		if s != verify.SchemeMinisign && s != verify.SchemeSSH {
			return state.Verified{}, false
		}
	}
	for _, k := range r.cfg.Trust.Keys {
		for _, t := range []*time.Time{k.NotBefore, k.NotAfter, k.Revoked} {
			if t != nil && t.After(v.At) && !t.After(r.now) {
				return state.Verified{}, false
			}
		}
	}
	return v, true
}

// verdict is the accepted verdict verifyItem remembers for it.
func (r *run) verdict(it *item, keys []string, at, signed time.Time) state.Verified {
	return state.Verified{File: it.fileSHA, Sigs: it.sigsSum(), Trust: r.trustSHA, Keys: keys, Schemes: it.schemes, At: at, Signed: signed}
}

// notRolledBack refuses an upstream rollback of a package (or checksum
// list) under key: content other than what was accepted last time, whose
// signatures state a signing time before the newest one accepted for it
// earlier. A stale or malicious mirror can serve an old release with its
// own, valid signatures; the time inside them is what gives it away. It
// returns the signing time to remember (the newer of the two), or why the
// content is refused. Content whose signatures state no time (SSH, a
// minisign comment the signer wrote itself) cannot be compared: it passes,
// and the earlier time stays the mark.
func (r *run) notRolledBack(key, sha string, signed time.Time) (time.Time, string) {
	// A signer whose clock ran ahead (minisign's timestamp is not checked
	// against ours) must not set a mark that its next, correctly dated
	// release could never pass: the mark goes no later than this run's
	// second (signing times have one-second resolution: a release signed
	// later in that same second states that second, and must pass).
	if now := r.now.Truncate(time.Second); signed.After(now) {
		signed = now
	}
	prev, ok := r.st.Verified[key]
	if !ok || !prev.Signed.After(signed) {
		return signed, "" // nothing to compare with, or not older
	}
	switch {
	case prev.File == sha || signed.IsZero():
		return prev.Signed, "" // the same content, or no time to compare: the mark stays
	case r.acceptRollback(key):
		return signed, "" // the operator accepted the older release: the new mark
	}
	return time.Time{}, fmt.Sprintf("%v: signed %s, before the version mirrored earlier (signed %s): a stale or malicious mirror serves an older, validly signed file under this name; it is left out of this bundle. If the upstream really went back, run sync once with --accept-rollback '%s'",
		ErrUpstreamRollback, signed.UTC().Format(time.RFC3339), prev.Signed.UTC().Format(time.RFC3339), strings.TrimSuffix(key, listKeySuffix))
}

// acceptRollback reports whether the operator accepted an older release
// of key for this run (SyncOptions.AcceptRollback).
func (r *run) acceptRollback(key string) bool {
	for _, p := range r.opt.AcceptRollback {
		if ok, _ := path.Match(p, key); ok {
			return true
		}
	}
	return false
}

// carryVerified keeps the remembered verdict of key when this run did not
// accept anything for it (rejected, or its checksum list failed): the next
// run still compares with the last accepted version, so that a rollback
// refused once is not accepted on the next try.
func (r *run) carryVerified(key string) {
	r.mu.Lock()
	r.verified.carry(key)
	r.mu.Unlock()
}

// markRetention is how long the verdict (and so the rollback mark) of a
// package that no run has seen since stays in the state.
const markRetention = 400 * 24 * time.Hour

// carryMarks keeps in the next state the verdicts of packages (and checksum
// lists) of configured sources that this run did not see, for
// markRetention after they were last accepted: an upstream that leaves a
// package out of its listing for one run must not erase the signing time
// the package's next version is compared with. A source taken out of the
// configuration drops its verdicts. Called once every verdict of the run
// is in.
func (r *run) carryMarks() {
	sources := make(map[string]bool, len(r.cfg.Sources))
	for _, s := range r.cfg.Sources {
		sources[s.Name] = true
	}
	r.verified.missing(func(k string, v state.Verified) {
		src, _, _ := strings.Cut(k, ":")
		if sources[src] && r.now.Sub(v.At) < markRetention {
			r.verified.put(k, v)
		}
	})
}

// listKey is where the verdict of a source's checksum list is remembered:
// beside the packages, under a name no package can have (package names
// hold no control characters).
func listKey(src *SourceConfig, listPath string) string {
	return src.Name + ":" + listPath + listKeySuffix
}

const listKeySuffix = "\tchecksums"

// plainBase is sigName without url.Parse for the common URL
// "http(s)://HOST[:PORT]/PATH" whose host is lowercase letters, digits,
// dots and dashes, whose port is digits, and whose path holds only
// letters, digits and "-._~/" (nothing to unescape, no query or
// fragment): its last element, as url.Parse and path.Base give it
// (FuzzSigName). ok is false for any other URL.
func plainBase(u string) (string, bool) {
	var rest string
	switch {
	case strings.HasPrefix(u, "https://"):
		rest = u[len("https://"):]
	case strings.HasPrefix(u, "http://"):
		rest = u[len("http://"):]
	default:
		return "", false
	}
	slash := strings.IndexByte(rest, '/')
	if slash <= 0 {
		return "", false
	}
	host, p := rest[:slash], rest[slash:]
	colon := false
	for i := 0; i < len(host); i++ {
		switch c := host[i]; {
		case c == ':' && !colon && i > 0 && i < len(host)-1:
			colon = true
		case '0' <= c && c <= '9', !colon && ('a' <= c && c <= 'z' || c == '.' || c == '-'):
		default:
			return "", false
		}
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
			return "", false
		}
	}
	b := p[strings.LastIndexByte(p, '/')+1:]
	if b == "" || b == "." || b == ".." {
		return "", false // path.Base cleans these: left to the slow path
	}
	return b, true
}

func sigName(u string) string {
	if b, ok := plainBase(u); ok {
		return b
	}
	if pu, err := url.Parse(u); err == nil {
		return path.Base(pu.Path)
	}
	return u
}

// loadTrust loads the policy and the self-contained trust text recorded in
// the bundle: the [trust] table with every `file =` key inlined, so that
// the inside can re-check every decision with the manifest alone. The
// policy used is built from that very text.
func loadTrust(cfg *Config) (string, *verify.Policy, error) {
	// Loading the file first gives errors with line numbers.
	p1, _, err := verify.LoadTrustFile(cfg.File)
	if err != nil {
		return "", nil, err
	}
	tc := verify.Config{Rules: cfg.Trust.Rules}
	for _, k := range cfg.Trust.Keys {
		if k.File != "" {
			fp := k.File
			if !isAbs(fp) {
				fp = cfg.Dir + "/" + fp
			}
			f, err := os.Open(fp)
			if err != nil {
				return "", nil, fmt.Errorf("trust key %q: %w", k.Name, err)
			}
			b, err := io.ReadAll(io.LimitReader(f, verify.MaxKeyFileSize+1))
			f.Close()
			if err != nil || len(b) > verify.MaxKeyFileSize {
				return "", nil, fmt.Errorf("trust key %q: read %s: %v", k.Name, fp, err)
			}
			if err := inlineKey(&k, b); err != nil {
				return "", nil, fmt.Errorf("trust key %q: %s: %w", k.Name, fp, err)
			}
		}
		tc.Keys = append(tc.Keys, k)
	}
	var buf bytes.Buffer
	buf.WriteString("# The trust table this bundle's packages were checked against (key files inlined).\n")
	if err := toml.NewEncoder(&buf).Encode(struct {
		Trust verify.Config `toml:"trust"`
	}{tc}); err != nil {
		return "", nil, err
	}
	var back struct {
		Trust verify.Config `toml:"trust"`
	}
	if _, err := toml.Decode(buf.String(), &back); err != nil {
		return "", nil, fmt.Errorf("trust table: re-read the inlined form: %w", err)
	}
	p2, err := verify.NewPolicy(back.Trust, cfg.Dir)
	if err != nil {
		return "", nil, fmt.Errorf("trust table: inlined form: %w", err)
	}
	if !reflect.DeepEqual(p1.Keys(), p2.Keys()) {
		return "", nil, errors.New("trust table: the inlined form describes other keys than the file (a bug; please report it)")
	}
	return buf.String(), p2, nil
}

func isAbs(p string) bool { return len(p) > 0 && p[0] == '/' }

// inlineKey moves a key file's content into the matching field.
func inlineKey(k *verify.KeyConfig, b []byte) error {
	t := bytes.TrimSpace(b)
	k.File = ""
	switch {
	case bytes.HasPrefix(t, []byte("-----BEGIN PGP")):
		k.OpenPGP = string(t)
	case bytes.HasPrefix(t, []byte("untrusted comment:")), bytes.HasPrefix(t, []byte("RW")):
		k.Minisign = string(t)
	case bytes.HasPrefix(t, []byte("ssh-")), bytes.HasPrefix(t, []byte("ecdsa-sha2-")), bytes.HasPrefix(t, []byte("sk-")):
		k.SSH = string(t)
	case len(t) > 0 && t[0]&0x80 != 0:
		var a bytes.Buffer
		w, err := armor.Encode(&a, "PGP PUBLIC KEY BLOCK", nil)
		if err != nil {
			return err
		}
		w.Write(b)
		if err := w.Close(); err != nil {
			return err
		}
		k.OpenPGP = a.String()
	default:
		return errors.New("not an OpenPGP, minisign or SSH public key")
	}
	return nil
}
