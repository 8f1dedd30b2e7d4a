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

// Ingest streams blobs into the repository's store, in two goroutines so
// that reading the source (for a bundle: zstd, tar and the reader's own
// SHA-256) runs beside hashing and writing the copy. Add reads a blob from
// its source in chunks and hands them to a writer goroutine, which writes
// them to a temporary file in the store's temporary folder while hashing
// and counting them; only a blob whose hash and size match, and whose
// source ended without an error, is moved under its name, with
// store.AdoptBatched: no fsync of its own. The blobs of an import become
// durable at once in Publish, by one syncfs(2) before the generation is
// built from them (a second one covers the tree before it is switched).
// Until then the store's batch marker is on disk, so a crash in between
// cannot leave a torn blob behind: Open re-hashes that batch
// (store.Recover) and drops what does not match.
//
// Add returns once it has read its blob; the writer may still be checking
// it. A failure of the writer (a mismatch, a full disk) is returned by the
// next Add or by Wait, which must be called once at the end, also after a
// failed Add.
type Ingest struct {
	r    *Repo
	ctx  context.Context
	msgs chan ingestMsg // to the writer
	free chan []byte    // chunk buffers, back from the writer
	done chan struct{}  // closed when the writer has finished

	mu  sync.Mutex
	err error // the first failure, of either goroutine

	// Set by the writer; read them after Wait.
	NewBlobs int   // blobs stored by this ingest
	Bytes    int64 // their bytes
}

// Chunks in flight between Add and the writer: ingestChunks buffers of
// ingestChunk bytes (2 MiB in all).
const (
	ingestChunk  = 256 << 10
	ingestChunks = 8
)

type ingestOp int

const (
	opStart ingestOp = iota // a blob begins: sum, size
	opData                  // buf holds its next bytes
	opEnd                   // the source ended cleanly: check and adopt
	opAbort                 // the source failed: drop the copy
)

type ingestMsg struct {
	op   ingestOp
	sum  string
	size int64
	buf  []byte
}

// Ingest starts streaming blobs into the store.
func (r *Repo) Ingest(ctx context.Context) *Ingest {
	in := &Ingest{r: r, ctx: ctx, msgs: make(chan ingestMsg, 2*ingestChunks), free: make(chan []byte, ingestChunks),
		done: make(chan struct{})}
	for range ingestChunks {
		in.free <- make([]byte, ingestChunk)
	}
	go in.writer()
	return in
}

func (in *Ingest) fail(err error) {
	in.mu.Lock()
	if in.err == nil {
		in.err = err
	}
	in.mu.Unlock()
}

func (in *Ingest) firstErr() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.err
}

// Add reads the blob sum of size bytes from src to its end. A blob already
// stored is read through all the same (src may check its hash at the end)
// and not written. It returns the first failure of this ingest so far.
func (in *Ingest) Add(sum string, size int64, src io.Reader) error {
	if err := in.firstErr(); err != nil {
		return err
	}
	if err := in.add(sum, size, src); err != nil {
		in.fail(err)
		return in.firstErr()
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
	rd := io.LimitReader(src, size+1)
	if have {
		buf, err := in.buffer()
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(io.Discard, rd, buf)
		in.free <- buf
		if err != nil {
			return err
		}
		if n != size {
			return &BlobError{SHA256: sum, Size: size, GotSize: n}
		}
		return nil
	}
	in.msgs <- ingestMsg{op: opStart, sum: sum, size: size}
	var n int64
	for {
		buf, err := in.buffer()
		if err != nil {
			in.msgs <- ingestMsg{op: opAbort}
			return err
		}
		k, rerr := io.ReadFull(rd, buf)
		n += int64(k)
		if k > 0 {
			in.msgs <- ingestMsg{op: opData, buf: buf[:k]}
		} else {
			in.free <- buf
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			// The source's own error names the blob (a bundle's
			// *BlobError, a damaged part, a cancelled context).
			in.msgs <- ingestMsg{op: opAbort}
			return rerr
		}
		if n > size {
			in.msgs <- ingestMsg{op: opAbort}
			return &BlobError{SHA256: sum, Size: size, GotSize: n}
		}
	}
	if n != size {
		in.msgs <- ingestMsg{op: opAbort}
		return &BlobError{SHA256: sum, Size: size, GotSize: n}
	}
	in.msgs <- ingestMsg{op: opEnd}
	return nil
}

// buffer waits for a free chunk buffer.
func (in *Ingest) buffer() ([]byte, error) {
	select {
	case b := <-in.free:
		return b[:cap(b)], nil
	case <-in.ctx.Done():
		return nil, in.ctx.Err()
	}
}

// writer writes, hashes and checks the blobs Add hands over, one after
// another, and adopts each that passed.
func (in *Ingest) writer() {
	defer close(in.done)
	var (
		f    *os.File
		w    io.Writer
		h    = sha256.New()
		cur  ingestMsg // the blob being written
		n    int64
		werr error // this blob failed: its remaining chunks are dropped
	)
	drop := func() {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
			f = nil
		}
	}
	defer drop()
	for m := range in.msgs {
		switch m.op {
		case opStart:
			drop()
			cur, n, werr = m, 0, nil
			h.Reset()
			if in.firstErr() != nil {
				werr = errSkipped
				continue
			}
			var err error
			if f, err = os.CreateTemp(in.r.blobs.TempDir(), tmpPrefix+"*"); err != nil {
				werr = fmt.Errorf("store blob %s: %w", cur.sum, err)
				in.fail(werr)
				continue
			}
			w = WrapWriter(f)
		case opData:
			if werr == nil {
				if _, err := w.Write(m.buf); err != nil {
					werr = fmt.Errorf("store blob %s: %w", cur.sum, err)
					in.fail(werr)
					drop()
				} else {
					h.Write(m.buf)
					n += int64(len(m.buf))
				}
			}
			in.free <- m.buf
		case opAbort:
			drop()
		case opEnd:
			if werr != nil {
				drop()
				continue
			}
			err := f.Close()
			name := f.Name()
			f = nil
			if err == nil && n != cur.size {
				err = &BlobError{SHA256: cur.sum, Size: cur.size, GotSize: n}
			}
			if err == nil {
				if got := hex.EncodeToString(h.Sum(nil)); got != cur.sum {
					err = &BlobError{SHA256: cur.sum, Size: cur.size, Got: got, GotSize: n}
				}
			}
			// Checked: only now does the blob get its name.
			if err == nil {
				err = in.r.blobs.AdoptBatched(name, cur.sum, cur.size)
			}
			if err != nil {
				os.Remove(name)
				var be *BlobError
				if !errors.As(err, &be) {
					err = fmt.Errorf("store blob %s: %w", cur.sum, err)
				}
				in.fail(err)
				continue
			}
			in.NewBlobs++
			in.Bytes += cur.size
			Checkpoint("blob")
		}
	}
}

// errSkipped marks a blob the writer did not write because the ingest had
// already failed; it is never returned.
var errSkipped = errors.New("skipped after an earlier failure")

// Wait waits until the writer has checked and stored every blob handed
// over, and returns the first failure. Call it exactly once, after the last
// Add (also when an Add failed).
func (in *Ingest) Wait() error {
	close(in.msgs)
	<-in.done
	return in.firstErr()
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
