package mirror

import (
	"bytes"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/mirror/fetch"
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
	// flights are this run's package downloads by URL (fetchShared).
	flights map[string]*flight
	// keyOnce and keyErr: the encrypted key decrypted before the first
	// download (unlockKey).
	keyOnce sync.Once
	keyErr  error
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
	flight      *flight // the download of pkg.URL this item makes for the run (land)
	adopted     bool    // the download passed its checks and is in the cache
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
