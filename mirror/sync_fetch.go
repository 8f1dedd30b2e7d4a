package mirror

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mirror-tool/mirror/mirror/fetch"
	"github.com/mirror-tool/mirror/verify"
)

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
					it.land()
					continue
				}
				if it.partialPath == "" {
					// Nothing downloaded (a cached file, a rejection, a
					// dry run): checked here, without the hand-over to
					// the verify pool, which is there to overlap the
					// checks of fresh downloads with the network.
					r.verifyDone(wctx, it, cancel)
					it.land()
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
				it.land()
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
	if cached, err := r.fetchShared(ctx, it); cached || err != nil {
		return err
	}
	if err := r.unlockKey(); err != nil {
		return err
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

// flight is one download of a URL in a run, shared by every item of that
// URL (two sources, or two names, for one upstream file): the partial file
// is named by the URL, so two downloads at once would write and adopt the
// same file. done is closed when the item making it has been verified;
// sha is then the blob it put into the cache, "" when it put none
// (rejected for its source, refused by the upstream, or the run failed).
type flight struct {
	done chan struct{}
	sha  string
	size int64
}

// fetchShared makes it the item that downloads its URL in this run, or
// waits for the item that does. When that one's download passed its own
// checks and is in the cache, it takes the cached file (cached true) and
// is verified from the cache against its own source's signatures, checksum
// list and policy, as any cached file is. Otherwise it downloads the file
// itself, once the other is done with the partial file.
func (r *run) fetchShared(ctx context.Context, it *item) (cached bool, err error) {
	for {
		r.mu.Lock()
		if r.flights == nil {
			r.flights = map[string]*flight{}
		}
		f := r.flights[it.pkg.URL]
		if f == nil || (f.landed() && f.sha == "") {
			it.flight = &flight{done: make(chan struct{})}
			r.flights[it.pkg.URL] = it.flight
			r.mu.Unlock()
			return false, nil
		}
		r.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return false, context.Cause(ctx)
		}
		if f.sha == "" {
			continue
		}
		if _, err := os.Stat(r.cache.Path(f.sha)); err != nil {
			return false, fmt.Errorf("package %s: %w", it.full(), err)
		}
		it.fromCache, it.fileSHA, it.fileSize = true, f.sha, f.size
		return true, nil
	}
}

func (f *flight) landed() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// land ends the download it made for the run (fetchShared), once it is
// verified (or the run failed): the items waiting for it go on.
func (it *item) land() {
	f := it.flight
	if f == nil {
		return
	}
	it.flight = nil
	if it.adopted && it.rejected == "" {
		f.sha, f.size = it.fileSHA, it.fileSize
	}
	close(f.done)
}

// unlockKey decrypts an encrypted operator key whose passphrase checkKey
// read from a file or variable, once, before the run's first package
// download (the other downloads wait for it): a wrong passphrase stops the
// run before it downloads anything, instead of after every download, when
// the bundle is signed. A run that downloads a package almost always signs
// a bundle, so scrypt's time and memory are spent now instead of then; a
// run with nothing to download (a no-op, a dry run) still never decrypts.
// A passphrase asked on the terminal (opt.Passphrase) is still asked only
// when a bundle is about to be signed, not over the progress display.
func (r *run) unlockKey() error {
	r.keyOnce.Do(func() {
		if r.pass != nil && r.key == nil {
			_, r.keyErr = r.loadKey(true)
		}
	})
	return r.keyErr
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
