package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// IngestWorkers is how many blobs are synced and moved into the store at
// once: fsync latency, not bandwidth, bounds a stream of small blobs (32
// against 8: 3.08 s against 3.82 s for 2,000 x 256 KiB, hyperfine, 5 runs
// each, same run; see docs/BENCHMARKS.md).
const IngestWorkers = 32

// tmpPrefix names the temporary blob files of an import inside the store's
// temporary folder; Open removes them (the repository lock says no other
// import is running).
const tmpPrefix = "import-"

// BlobError names a blob whose bytes did not match the manifest.
type BlobError struct {
	SHA256  string
	Size    int64  // announced
	Got     string // "" when the size differed
	GotSize int64
}

func (e *BlobError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("blob %s: %d bytes or more, manifest says %d: %v", e.SHA256, e.GotSize, e.Size, ErrBlobMismatch)
	}
	return fmt.Sprintf("blob %s: content hashes to %s (%d bytes): %v", e.SHA256, e.Got, e.GotSize, ErrBlobMismatch)
}
func (e *BlobError) Unwrap() error { return ErrBlobMismatch }

// ErrBlobMismatch: a blob's bytes differ from its announced hash or size.
var ErrBlobMismatch = errors.New("blob does not match its SHA-256 or size")

// Ingest streams blobs into the repository's store. Add reads one blob to
// a temporary file in the store's temporary folder, hashing and counting
// it; only a blob whose hash and size match is handed to a pool that syncs
// it and moves it under its name (store.Adopt). Call Wait at the end.
type Ingest struct {
	r      *Repo
	ctx    context.Context
	cancel context.CancelFunc
	jobs   chan adoptJob
	wg     sync.WaitGroup
	buf    []byte

	mu       sync.Mutex
	err      error
	NewBlobs int   // blobs stored by this ingest
	Bytes    int64 // their bytes
}

type adoptJob struct {
	path string
	sum  string
	size int64
}

// Ingest starts streaming blobs into the store.
func (r *Repo) Ingest(ctx context.Context) *Ingest {
	ctx, cancel := context.WithCancel(ctx)
	in := &Ingest{r: r, ctx: ctx, cancel: cancel, jobs: make(chan adoptJob, IngestWorkers), buf: make([]byte, 256<<10)}
	for range IngestWorkers {
		in.wg.Add(1)
		go in.worker()
	}
	return in
}

func (in *Ingest) fail(err error) {
	in.mu.Lock()
	if in.err == nil {
		in.err = err
	}
	in.mu.Unlock()
	in.cancel()
}

func (in *Ingest) firstErr() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.err
}

func (in *Ingest) worker() {
	defer in.wg.Done()
	for j := range in.jobs {
		if in.ctx.Err() != nil {
			os.Remove(j.path)
			continue
		}
		if err := in.r.blobs.Adopt(j.path, j.sum, j.size); err != nil {
			os.Remove(j.path)
			in.fail(fmt.Errorf("store blob %s: %w", j.sum, err))
			continue
		}
		in.mu.Lock()
		in.NewBlobs++
		in.Bytes += j.size
		in.mu.Unlock()
		Checkpoint("blob")
	}
}

// Add reads the blob sum of size bytes from src to its end. A blob already
// stored is read through all the same (src may check its hash at the end)
// and not written.
func (in *Ingest) Add(sum string, size int64, src io.Reader) error {
	if err := in.firstErr(); err != nil {
		return err
	}
	if err := in.ctx.Err(); err != nil {
		return err
	}
	if !ValidSum(sum) || size < 0 {
		return fmt.Errorf("blob %q: bad name or size: %w", sum, ErrCorrupt)
	}
	have, err := in.r.blobs.Has(sum)
	if err != nil {
		return err
	}
	if have {
		n, err := io.CopyBuffer(io.Discard, io.LimitReader(src, size+1), in.buf)
		if err != nil {
			return err
		}
		if n != size {
			return &BlobError{SHA256: sum, Size: size, GotSize: n}
		}
		return nil
	}
	f, err := os.CreateTemp(in.r.blobs.TempDir(), tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("store blob %s: %w", sum, err)
	}
	h := sha256.New()
	w := io.MultiWriter(WrapWriter(f), h)
	rd := &readErr{r: io.LimitReader(src, size+1)}
	n, err := io.CopyBuffer(w, rd, in.buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = &BlobError{SHA256: sum, Size: size, GotSize: n}
	}
	if err == nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			err = &BlobError{SHA256: sum, Size: size, Got: got, GotSize: n}
		}
	}
	if err != nil {
		os.Remove(f.Name())
		var be *BlobError
		if errors.As(err, &be) || (rd.err != nil && err == rd.err) {
			return err // the source's own error names the blob
		}
		return fmt.Errorf("store blob %s: %w", sum, err)
	}
	select {
	case in.jobs <- adoptJob{path: f.Name(), sum: sum, size: size}:
		return nil
	case <-in.ctx.Done():
		os.Remove(f.Name())
		if err := in.firstErr(); err != nil {
			return err
		}
		return in.ctx.Err()
	}
}

// Wait waits for every blob handed over to be in the store and returns the
// first error. It must be called exactly once, after the last Add (also
// when an Add failed: it stops the workers).
func (in *Ingest) Wait() error {
	close(in.jobs)
	in.wg.Wait()
	in.cancel()
	return in.firstErr()
}

// readErr remembers the error of the source, to tell it from a write error.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// cleanIngestTmp removes temporary blob files an interrupted import left.
func (r *Repo) cleanIngestTmp() error {
	dir := r.blobs.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("clean %s: %w", dir, err)
			}
		}
	}
	return nil
}
