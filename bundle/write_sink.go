package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/mirror-tool/mirror/internal/atomicfile"
	"github.com/mirror-tool/mirror/internal/minisign"
)

// sink receives the compressed stream: one temporary file, or a series of
// part files each starting with a reserved header block that is filled in
// once the whole stream (and so the part count) is known.
//
// It is a pipeline. Write copies the stream into chunks of chunkSize bytes
// and hands each full chunk to long-lived goroutines: one computes the
// BLAKE2b-512 for the detached signature, one writes the chunk to its file,
// and for a split bundle two more compute the SHA-256 of the whole stream
// and of each part, which the part headers carry. An unsplit bundle has no
// SHA-256 of its own: its BLAKE2b-512 (what the .minisig signs, and what
// b2sum prints) identifies it, and a third pass over 500 MiB would cost a
// fifth of the writer's CPU (docs/BENCHMARKS.md). The encoder goes on
// meanwhile, so the hashes (which cost more CPU than compressing
// already-compressed blobs) use the second core instead of holding the
// stream up. At most chunkCount chunks exist: when the workers
// fall behind, Write waits for a free one, so memory stays bounded.
//
// Only one goroutine calls Write at a time (the zstd encoder serializes
// its writes). The hashes, sums and werr belong to the workers until stop
// has returned.
type sink struct {
	dir, file string
	maxPart   int64 // payload bytes per part; 0 = one file

	files     []*atomicfile.File
	paths     []string
	sizes     []int64 // bytes of stream given to each file
	committed []string
	size      int64

	cur         *chunk // being filled
	free        chan *chunk
	b2Q, wrQ    chan *chunk
	shaQ, partQ chan *chunk // split bundles only
	nworkers    int32
	workers     sync.WaitGroup
	stopped     bool

	// Owned by the workers until stop returns.
	sha      hash.Hash // SHA-256 of the whole stream (split bundles only)
	partHash hash.Hash // SHA-256 of the current part's payload
	part     int       // the part partHash covers (1-based; 0 before the first)
	sums     []string  // SHA-256 of each finished part
	digest   hash.Hash // BLAKE2b-512 for the detached minisign signature

	errMu sync.Mutex
	werr  error // the file writer's first error
}

// chunk is a piece of the stream bound for one file.
type chunk struct {
	buf  []byte
	file int // index into sink.files
	f    *atomicfile.File
	path string       // what f becomes, for errors
	refs atomic.Int32 // workers yet to finish with it
}

const (
	chunkSize  = 256 << 10
	chunkCount = 16
	// writebackChunk is how many bytes the file writer lets pile up in the
	// page cache before it asks the kernel to start writing them.
	writebackChunk = 8 << 20
)

func newSink(dir, file string, maxPart int64) *sink {
	s := &sink{dir: dir, file: file, maxPart: maxPart, digest: minisign.NewDigest(),
		free: make(chan *chunk, chunkCount),
		b2Q:  make(chan *chunk, chunkCount), wrQ: make(chan *chunk, chunkCount)}
	for range chunkCount {
		s.free <- &chunk{buf: make([]byte, 0, chunkSize)}
	}
	s.nworkers = 2
	go s.hash(s.b2Q, s.digest)
	go s.writeFiles()
	if maxPart > 0 {
		s.sha = sha256.New()
		s.shaQ, s.partQ = make(chan *chunk, chunkCount), make(chan *chunk, chunkCount)
		s.nworkers += 2
		go s.hash(s.shaQ, s.sha)
		go s.hashParts()
	}
	s.workers.Add(int(s.nworkers))
	return s
}

func (s *sink) Write(p []byte) (int, error) {
	if err := s.writeErr(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		last := len(s.files) - 1
		if last < 0 || (s.maxPart > 0 && s.sizes[last] == s.maxPart) {
			if err := s.next(); err != nil {
				return written, err
			}
			last++
		}
		if s.cur == nil {
			s.cur = <-s.free
			s.cur.buf, s.cur.file, s.cur.f, s.cur.path = s.cur.buf[:0], last, s.files[last], s.paths[last]
		}
		n := min(len(p), cap(s.cur.buf)-len(s.cur.buf))
		if s.maxPart > 0 {
			n = int(min(int64(n), s.maxPart-s.sizes[last]))
		}
		s.cur.buf = append(s.cur.buf, p[:n]...)
		if len(s.cur.buf) == cap(s.cur.buf) {
			s.send()
		}
		s.sizes[last] += int64(n)
		s.size += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

// send hands the current chunk to the workers.
func (s *sink) send() {
	c := s.cur
	s.cur = nil
	c.refs.Store(s.nworkers)
	s.b2Q <- c
	s.wrQ <- c
	if s.maxPart > 0 {
		s.shaQ <- c
		s.partQ <- c
	}
}

func (s *sink) done(c *chunk) {
	if c.refs.Add(-1) == 0 {
		s.free <- c
	}
}

// hash feeds every chunk of q to h: the BLAKE2b for the detached
// signature, or a split stream's SHA-256.
func (s *sink) hash(q <-chan *chunk, h hash.Hash) {
	defer s.workers.Done()
	for c := range q {
		h.Write(c.buf)
		s.done(c)
	}
}

// hashParts computes the SHA-256 of each part's payload (the chunks never
// straddle two parts).
func (s *sink) hashParts() {
	defer s.workers.Done()
	for c := range s.partQ {
		if c.file+1 != s.part {
			s.endPart()
			s.partHash, s.part = sha256.New(), c.file+1
		}
		s.partHash.Write(c.buf)
		s.done(c)
	}
	s.endPart()
}

func (s *sink) endPart() {
	if s.partHash != nil {
		s.sums = append(s.sums, hex.EncodeToString(s.partHash.Sum(nil)))
		s.partHash = nil
	}
}

// writeFiles writes the chunks to their files in order, and starts the
// writeback of every writebackChunk bytes so that the disk works while the
// stream is still being made (see startWriteback). After the first error
// it only drops chunks.
func (s *sink) writeFiles() {
	defer s.workers.Done()
	var f *atomicfile.File
	var off, wb int64
	for c := range s.wrQ {
		if s.writeErr() == nil {
			if c.f != f {
				f, off, wb = c.f, 0, 0
				if s.maxPart > 0 {
					off = PartHeaderSize
				}
			}
			n, err := writeChunk(f, c.buf)
			if err == nil && n < len(c.buf) {
				err = io.ErrShortWrite
			}
			if err != nil {
				s.errMu.Lock()
				s.werr = fmt.Errorf("write %s: %w", c.path, err)
				s.errMu.Unlock()
			}
			if off += int64(n); off-wb >= writebackChunk {
				startWriteback(f.File, wb, off-wb)
				wb = off
			}
		}
		s.done(c)
	}
}

// writeChunk writes b to f; a variable so that tests can make the disk fail.
var writeChunk = func(f *atomicfile.File, b []byte) (int, error) { return f.Write(b) }

func (s *sink) writeErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.werr
}

// stop sends what is left, waits for the workers and returns the file
// writer's error. It may be called more than once.
func (s *sink) stop() error {
	if !s.stopped {
		s.stopped = true
		if s.cur != nil && len(s.cur.buf) > 0 {
			s.send()
		}
		close(s.b2Q)
		close(s.wrQ)
		if s.maxPart > 0 {
			close(s.shaQ)
			close(s.partQ)
		}
		s.workers.Wait()
	}
	return s.writeErr()
}

// next starts the next file. The chunk being filled belongs to the last
// file, so it is sent first.
func (s *sink) next() error {
	if s.cur != nil && len(s.cur.buf) > 0 {
		s.send()
	}
	path := filepath.Join(s.dir, s.file)
	if s.maxPart > 0 {
		if len(s.files) == MaxParts {
			return fmt.Errorf("%w: bundle %s needs more than %d parts; raise the maximum part size", ErrLimit, s.file, MaxParts)
		}
		path = filepath.Join(s.dir, PartName(s.file, len(s.files)+1))
	}
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return err
	}
	s.files = append(s.files, f)
	s.paths = append(s.paths, path)
	s.sizes = append(s.sizes, 0)
	if s.maxPart > 0 {
		// No chunk of this file has been sent yet, so the writer cannot
		// be writing to it.
		if _, err := f.Write(make([]byte, PartHeaderSize)); err != nil {
			return err
		}
	}
	return nil
}
