package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mirror-tool/mirror/internal/atomicfile"
	"github.com/mirror-tool/mirror/internal/minisign"
)

// DefaultLevel is the zstd level (as the zstd command counts) used when
// Options.Level is 0. Level 1 is the fastest: the blobs are packages that
// are compressed already (.deb, .tar.gz, wheels), so higher levels spend
// CPU for almost no gain; the manifest and text members still shrink by
// their repeats (levels 1 and 2 skip the Huffman coding of literals, see
// newEncoder).
const DefaultLevel = 1

// Options tune Write. The zero value is a good default.
type Options struct {
	Level       int   // zstd level 1..22 as the zstd command counts (mapped to the encoder's 4 speeds); 0 = DefaultLevel
	MaxPartSize int64 // split into part files of at most this many bytes; 0 = no split
	Concurrency int   // zstd encoder goroutines; 0 = GOMAXPROCS
	// Progress, when set, is called after each blob with the number of
	// blobs and blob bytes written so far.
	Progress func(blobs int, bytes int64)
}

// BlobSource opens a blob's content by its SHA-256 (lowercase hex). The
// writer checks size and hash while copying, and closes what it opened.
type BlobSource func(sha256 string) (io.ReadCloser, error)

// Written describes a bundle that Write made.
type Written struct {
	Paths []string // the bundle file or its parts, then the .minisig
	Size  int64    // bytes of NAME.tar.zst (the joined parts)
	// BLAKE2b512 is the BLAKE2b-512 of NAME.tar.zst (the joined parts), in
	// lowercase hex: the digest the .minisig signs, as b2sum prints it.
	BLAKE2b512 string
	// SHA256 is the SHA-256 of the joined parts of a split bundle, which
	// every part header carries; empty for an unsplit bundle, which is not
	// hashed a third time for it.
	SHA256 string
}

// Suffix is the file name suffix of a bundle.
const Suffix = ".tar.zst"

// Write writes dir/NAME.tar.zst (or its parts NAME.tar.zst.part-NNN when
// opt.MaxPartSize is set) and NAME.tar.zst.minisig. Nothing is visible
// before everything is complete and fsynced, and on error nothing is left
// behind; it refuses to replace an existing bundle of that name (the error
// matches os.ErrExist). It streams: memory use does not grow with the
// bundle's size.
//
// Write completes m before signing it: Format, ID (ComputeID) and
// OperatorKeyID (key's id) when empty, times in UTC; then m must pass
// Validate. Each blob of m.Blobs is read from blobs and must have the listed
// size and SHA-256, or Write fails with ErrHashMismatch naming it.
func Write(ctx context.Context, dir, name string, m *Manifest, key minisign.PrivateKey, blobs BlobSource, opt Options) (*Written, error) {
	name = strings.TrimSuffix(name, Suffix)
	if err := checkSegment(name); err != nil || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("bundle name %q: must be a plain file name not starting with a dot", clip(name))
	}
	file := name + Suffix
	level := opt.Level
	if level == 0 {
		level = DefaultLevel
	}
	if level < 1 || level > 22 {
		return nil, fmt.Errorf("zstd level %d is outside 1..22", level)
	}
	if opt.MaxPartSize != 0 && opt.MaxPartSize <= PartHeaderSize {
		return nil, fmt.Errorf("max part size %d must be more than the %d-byte part header", opt.MaxPartSize, PartHeaderSize)
	}
	if m.Format == "" {
		m.Format = Format
	}
	if m.OperatorKeyID == "" {
		m.OperatorKeyID = key.ID.String()
	}
	if m.OperatorKeyID != key.ID.String() {
		return nil, fmt.Errorf("%w: manifest names operator key %s, signing key is %s", ErrSignature, clip(m.OperatorKeyID), key.ID)
	}
	m.Created, m.Expires = m.Created.UTC(), m.Expires.UTC()
	if m.ID == "" {
		m.ID = m.ComputeID()
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", file, err)
	}
	if existing, _ := filepath.Glob(globEscape(filepath.Join(dir, file)) + "*"); len(existing) > 0 {
		return nil, fmt.Errorf("bundle %s: %s exists already; choose another name or remove the old bundle: %w", file, existing[0], os.ErrExist)
	}

	mbytes, err := marshalManifest(m)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(bytes.NewReader(mbytes), manifestComment(m), untrustedComment(key.ID))
	if err != nil {
		return nil, err
	}
	sigBytes := sig.Marshal()
	rd := readme(m)

	maxPart := opt.MaxPartSize
	if maxPart != 0 {
		maxPart -= PartHeaderSize
	}
	out := newSink(dir, file, maxPart)
	defer out.abort()
	enc, err := newEncoder(out, level, opt.Concurrency)
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	tw := tar.NewWriter(enc)
	put := func(name string, size int64) error {
		return tw.WriteHeader(memberHeader(name, size, m.Created))
	}
	for _, mem := range []struct {
		name string
		data []byte
	}{{ManifestName, mbytes}, {SignatureName, sigBytes}, {ReadmeName, rd}} {
		if err := put(mem.name, int64(len(mem.data))); err != nil {
			return nil, err
		}
		if _, err := tw.Write(mem.data); err != nil {
			return nil, err
		}
	}
	if err := put(SumsName, sumsSize(m)); err != nil {
		return nil, err
	}
	if _, err := io.Copy(tw, sumsStream(m, mbytes, sigBytes, rd)); err != nil {
		return nil, err
	}

	buf := make([]byte, 256<<10)
	var done int64
	for i, b := range m.Blobs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := put(BlobDir+b.SHA256, b.Size); err != nil {
			return nil, err
		}
		if err := copyBlob(ctx, tw, blobs, b, buf); err != nil {
			if werr := out.writeErr(); werr != nil {
				err = werr // the bundle file's disk, not the blob
			}
			return nil, fmt.Errorf("bundle %s: %w", file, err)
		}
		done += b.Size
		if opt.Progress != nil {
			opt.Progress(i+1, done)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.commit(ctx, m, key)
}

// memberHeader is the one tar header a member may have: the writer writes
// it and the reader requires its exact bytes.
func memberHeader(name string, size int64, created time.Time) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: created.Truncate(time.Second)}
}

func newEncoder(w io.Writer, level, concurrency int) (*zstd.Encoder, error) {
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	speed := zstd.EncoderLevelFromZstd(level)
	return zstd.NewWriter(w,
		zstd.WithEncoderLevel(speed),
		zstd.WithEncoderConcurrency(concurrency),
		zstd.WithEncoderCRC(true),
		zstd.WithWindowSize(min(MaxWindowSize, windowFor(level))),
		// The fastest levels leave literals as they are: a block of
		// compressed packages with tar headers between them (many zero
		// bytes) passes the Huffman coder's quick test and is encoded in
		// full only to be thrown away, a quarter of the CPU of a bundle of
		// 20,000 small files (BenchmarkWriteSmall); the manifest's hex
		// loses that stage's gain, about 1 % of such a bundle.
		zstd.WithNoEntropyCompression(speed == zstd.SpeedFastest),
	)
}

// windowFor is the encoder window: the library's default for the level,
// capped by MaxWindowSize so that every reader can decode with bounded
// memory.
func windowFor(level int) int {
	if zstd.EncoderLevelFromZstd(level) == zstd.SpeedFastest {
		return 4 << 20
	}
	return 8 << 20
}

func marshalManifest(m *Manifest) ([]byte, error) {
	c := *m
	// Empty lists are written as [] rather than null.
	if c.Sources == nil {
		c.Sources = []Source{}
	}
	if c.Packages == nil {
		c.Packages = []Package{}
	}
	if c.Tree == nil {
		c.Tree = []Entry{}
	}
	if c.Blobs == nil {
		c.Blobs = []Blob{}
	}
	if c.Rejected == nil {
		c.Rejected = []Rejected{}
	}
	pk := make([]Package, len(c.Packages))
	for i, p := range c.Packages {
		if p.Signatures == nil {
			p.Signatures = []PackageSignature{}
		}
		if p.Keys == nil {
			p.Keys = []string{}
		}
		pk[i] = p
	}
	c.Packages = pk
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// sumsStream yields SHA256SUMS: the fixed members, then one line per blob.
func sumsStream(m *Manifest, mbytes, sig, rd []byte) io.Reader {
	return io.MultiReader(bytes.NewReader(sumsHeader(mbytes, sig, rd)), &blobLines{blobs: m.Blobs})
}

type blobLines struct {
	blobs []Blob
	pend  []byte
}

func (l *blobLines) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(l.pend) == 0 {
			if len(l.blobs) == 0 {
				break
			}
			l.pend = []byte(sumsLine(l.blobs[0].SHA256, BlobDir+l.blobs[0].SHA256))
			l.blobs = l.blobs[1:]
		}
		k := copy(p[n:], l.pend)
		l.pend = l.pend[k:]
		n += k
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// copyBlob copies exactly b.Size bytes of blob b to w and checks its hash.
func copyBlob(ctx context.Context, w io.Writer, open BlobSource, b Blob, buf []byte) (err error) {
	rc, err := open(b.SHA256)
	if err != nil {
		return &BlobError{SHA256: b.SHA256, Err: fmt.Errorf("open: %w", err)}
	}
	defer func() {
		if cerr := rc.Close(); err == nil && cerr != nil {
			err = &BlobError{SHA256: b.SHA256, Err: cerr}
		}
	}()
	h := sha256.New()
	src := &ctxReader{ctx: ctx, r: io.TeeReader(rc, h)}
	n, err := io.CopyBuffer(w, io.LimitReader(src, b.Size), buf)
	if err != nil {
		return &BlobError{SHA256: b.SHA256, Err: err}
	}
	if n < b.Size {
		return &BlobError{SHA256: b.SHA256, Err: fmt.Errorf("%w: source has %d bytes, the manifest says %d", ErrHashMismatch, n, b.Size)}
	}
	var one [1]byte
	if k, _ := io.ReadFull(rc, one[:]); k > 0 {
		return &BlobError{SHA256: b.SHA256, Err: fmt.Errorf("%w: source is longer than the %d bytes the manifest says", ErrHashMismatch, b.Size)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != b.SHA256 {
		return &BlobError{SHA256: b.SHA256, Err: fmt.Errorf("%w: source content has SHA-256 %s", ErrHashMismatch, got)}
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// commit writes the part headers, commits every file and then the detached
// signature.
func (s *sink) commit(ctx context.Context, m *Manifest, key minisign.PrivateKey) (*Written, error) {
	if err := s.stop(); err != nil {
		return nil, err
	}
	if len(s.files) == 0 {
		return nil, errors.New("bundle: nothing was written")
	}
	var total string
	if s.maxPart > 0 {
		total = hex.EncodeToString(s.sha.Sum(nil))
		if len(s.sums) != len(s.files) {
			return nil, fmt.Errorf("bundle %s: %d part hashes for %d parts", s.file, len(s.sums), len(s.files))
		}
		var off int64
		for i, f := range s.files {
			h := &PartHeader{Format: PartFormat, BundleID: m.ID, Sequence: m.Sequence, Name: s.file,
				Index: i + 1, Count: len(s.files), Offset: off, Size: s.sizes[i], SHA256: s.sums[i],
				TotalSize: s.size, TotalSHA256: total}
			off += s.sizes[i]
			block, err := marshalPartHeader(h, key)
			if err != nil {
				return nil, err
			}
			if _, err := f.WriteAt(block, 0); err != nil {
				return nil, err
			}
		}
	}
	digest := s.digest.Sum(nil)
	sig, err := key.SignDigest(digest, fileComment(m, s.file), untrustedComment(key.ID))
	if err != nil {
		return nil, err
	}
	sf, err := atomicfile.Create(filepath.Join(s.dir, s.file+".minisig"), 0o644)
	if err != nil {
		return nil, err
	}
	s.files = append(s.files, sf)
	s.paths = append(s.paths, filepath.Join(s.dir, s.file+".minisig"))
	if _, err := sf.Write(sig.Marshal()); err != nil {
		return nil, err
	}
	for i, f := range s.files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := f.CommitNew(); err != nil {
			return nil, err
		}
		s.committed = append(s.committed, s.paths[i])
	}
	w := &Written{Paths: s.paths, Size: s.size, BLAKE2b512: hex.EncodeToString(digest), SHA256: total}
	s.files, s.committed = nil, nil
	return w, nil
}

// abort removes everything not handed to the caller.
func (s *sink) abort() {
	s.cur = nil // nothing more is written to files about to be removed
	s.stop()
	for _, f := range s.files {
		f.Abort()
	}
	for _, p := range s.committed {
		os.Remove(p)
	}
	if len(s.committed) > 0 {
		atomicfile.SyncDir(s.dir)
	}
	s.files, s.committed = nil, nil
}

// globEscape escapes glob metacharacters in a file name.
func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}

// Files returns the files of the bundle at path: path itself when it
// exists, else its parts path.part-NNN (sorted), so that a split bundle can
// be named like a whole one. The result is for Open, which checks it.
func Files(path string) ([]string, error) {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return []string{path}, err
	}
	parts, err := filepath.Glob(globEscape(path) + partSuffix + "[0-9][0-9][0-9]")
	if err != nil || len(parts) == 0 {
		return nil, fmt.Errorf("bundle %s: no such file, and no parts %s: %w", path, PartName(path, 1), os.ErrNotExist)
	}
	return parts, nil
}
