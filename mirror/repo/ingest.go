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
)

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
// it; only a blob whose hash and size match is moved under its name, with
// store.AdoptBatched: no fsync of its own. The blobs of an import become
// durable at once in Publish, by one syncfs(2) before the generation is
// built from them (a second one covers the tree before it is switched).
// Until then the store's batch marker is on disk, so a crash in between
// cannot leave a torn blob behind: Open re-hashes that batch
// (store.Recover) and drops what does not match. Call Wait at the end.
type Ingest struct {
	r   *Repo
	ctx context.Context
	buf []byte
	err error // sticky: the first failure

	NewBlobs int   // blobs stored by this ingest
	Bytes    int64 // their bytes
}

// Ingest starts streaming blobs into the store.
func (r *Repo) Ingest(ctx context.Context) *Ingest {
	return &Ingest{r: r, ctx: ctx, buf: make([]byte, 256<<10)}
}

// Add reads the blob sum of size bytes from src to its end. A blob already
// stored is read through all the same (src may check its hash at the end)
// and not written. After a failure every later Add returns that error.
func (in *Ingest) Add(sum string, size int64, src io.Reader) error {
	if in.err != nil {
		return in.err
	}
	if err := in.add(sum, size, src); err != nil {
		in.err = err
		return err
	}
	return nil
}

func (in *Ingest) add(sum string, size int64, src io.Reader) error {
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
	// Checked: only now does the blob get its name.
	if err := in.r.blobs.AdoptBatched(f.Name(), sum, size); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("store blob %s: %w", sum, err)
	}
	in.NewBlobs++
	in.Bytes += size
	Checkpoint("blob")
	return nil
}

// Wait returns the first error of the ingest. The blobs are visible in the
// store; they are durable after the next Publish (or Sync of the store).
// Call it once, after the last Add (also when an Add failed).
func (in *Ingest) Wait() error {
	return in.err
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
