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
	"hash"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mirror-tool/mirror/internal/minisign"
)

// BlobInfo describes the blob Next returns.
type BlobInfo struct {
	Index  int // 0-based position in Manifest().Blobs
	SHA256 string
	Size   int64
}

// Reader reads a bundle whose manifest was checked against the operator key.
// Blobs come in manifest order from Next. Once an error is returned, every
// later call returns it too. A Reader is not safe for concurrent use.
type Reader struct {
	ctx    context.Context
	lim    Limits
	m      *Manifest
	mbytes []byte
	sig    minisign.Signature

	file   *os.File    // a single bundle file, or
	parts  *partReader // the parts of a split bundle
	walker *frameWalker
	// mu guards the raw side (file, parts, walker): the zstd decoder
	// reads it from its own goroutine.
	mu     sync.Mutex
	dec    *zstd.Decoder
	stream *streamReader
	tr     *tar.Reader

	tap     *tapReader // the decompressed bytes that are not member content
	pending [][]byte   // observed headers of members 1 and 2, checked once mtime is known
	lastPad int64      // padding owed by the previous member

	members int
	mtimes  []time.Time // of the members read before the manifest was parsed
	sizes   []int64
	next    int
	cur     *blobReader
	err     error // sticky: once failed, always failed
}

// Open opens a bundle: paths is the bundle file, or all its parts in any
// order. It checks the operator signature over the manifest's exact bytes
// against pub before parsing a single field, then the manifest (Validate
// with lim), README and SHA256SUMS. The blobs follow with Next. A zero field
// of lim means DefaultLimits'.
func Open(ctx context.Context, paths []string, pub minisign.PublicKey, lim Limits) (*Reader, error) {
	return open(ctx, paths, &pub, lim)
}

// Inspect reads and validates the manifest of a bundle WITHOUT checking any
// signature: for showing what a bundle claims (mirror inspect). Nothing it
// returns is authenticated; use Open to trust a bundle.
func Inspect(ctx context.Context, paths []string, lim Limits) (*Manifest, error) {
	r, err := open(ctx, paths, nil, lim)
	if err != nil {
		return nil, err
	}
	m := r.m
	r.Close()
	return m, nil
}

func fillLimits(lim Limits) Limits {
	d := DefaultLimits
	if lim.MaxManifestSize <= 0 {
		lim.MaxManifestSize = d.MaxManifestSize
	}
	if lim.MaxBlobs <= 0 {
		lim.MaxBlobs = d.MaxBlobs
	}
	if lim.MaxTreeEntries <= 0 {
		lim.MaxTreeEntries = d.MaxTreeEntries
	}
	if lim.MaxPackages <= 0 {
		lim.MaxPackages = d.MaxPackages
	}
	if lim.MaxBlobSize <= 0 {
		lim.MaxBlobSize = d.MaxBlobSize
	}
	if lim.MaxTotalSize <= 0 {
		lim.MaxTotalSize = d.MaxTotalSize
	}
	if lim.MaxMembers <= 0 {
		lim.MaxMembers = d.MaxMembers
	}
	if lim.MaxWindowSize <= 0 {
		lim.MaxWindowSize = d.MaxWindowSize
	}
	return lim
}

func open(ctx context.Context, paths []string, pub *minisign.PublicKey, lim Limits) (_ *Reader, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, errors.New("no bundle file given")
	}
	r := &Reader{ctx: ctx, lim: fillLimits(lim)}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	var raw io.Reader
	single := false
	if len(paths) == 1 {
		f, err := openFile(paths[0])
		if err != nil {
			return nil, err
		}
		prefix := make([]byte, len(PartFormat)+1)
		n, _ := io.ReadFull(f, prefix)
		if !isPartHeader(prefix[:n]) {
			single = true
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				f.Close()
				return nil, err
			}
			r.file = f
			raw = f
		} else {
			f.Close()
		}
	}
	if !single {
		parts, err := openParts(paths, pub)
		if err != nil {
			return nil, err
		}
		r.parts = newPartReader(parts)
		raw = r.parts
	}
	r.walker = newFrameWalker(&ctxReader{ctx: ctx, r: raw}, r.lim.MaxWindowSize)
	r.dec, err = zstd.NewReader(&lockedReader{mu: &r.mu, r: r.walker},
		zstd.WithDecoderMaxWindow(uint64(r.lim.MaxWindowSize)),
		zstd.WithDecoderMaxMemory(uint64(r.lim.MaxWindowSize)),
	)
	if err != nil {
		return nil, err
	}
	// Decompressed bytes: blobs, the fixed members, and tar's overhead of at
	// most three 512-byte blocks per member (header, PAX header, padding).
	maxOut := r.lim.MaxTotalSize + r.lim.MaxManifestSize + int64(r.lim.MaxMembers)*int64(sumsLineLen+3*512) + 1<<20
	r.stream = &streamReader{r: r, max: maxOut}
	r.tap = &tapReader{r: r.stream}
	r.tr = tar.NewReader(r.tap)

	// 1. The manifest's bytes, then 2. its signature, checked before the
	// manifest is parsed.
	r.mbytes, err = r.member(ManifestName, r.lim.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	sigBytes, err := r.member(SignatureName, minisign.MaxSignatureSize)
	if err != nil {
		return nil, err
	}
	r.sig, err = minisign.ParseSignature(sigBytes)
	if err != nil {
		return nil, &MemberError{Name: SignatureName, Index: 2, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	if r.sig.UntrustedComment != untrustedComment(r.sig.KeyID) {
		return nil, &MemberError{Name: SignatureName, Index: 2, Err: fmt.Errorf("%w: untrusted comment %q is not the one this format writes", ErrMalformed, clip(r.sig.UntrustedComment))}
	}
	if pub != nil {
		if err := checkSig(*pub, r.sig, r.mbytes); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
	}
	m, err := parseManifest(r.mbytes, r.lim)
	if err != nil {
		return nil, err
	}
	r.m = m
	var pad int64
	for i, t := range r.mtimes {
		name := [...]string{ManifestName, SignatureName}[i]
		if err := r.checkMtime(name, i+1, t); err != nil {
			return nil, err
		}
		if err := r.checkCanonical(name, i+1, pad, r.sizes[i], r.pending[i]); err != nil {
			return nil, err
		}
		pad = (blockSize - r.sizes[i]%blockSize) % blockSize
	}
	r.pending = nil
	if pub != nil {
		if r.sig.TrustedComment != manifestComment(m) {
			return nil, fmt.Errorf("%w: manifest signature's trusted comment %q does not name this bundle (%q)", ErrSignature, clip(r.sig.TrustedComment), manifestComment(m))
		}
		if m.OperatorKeyID != pub.ID.String() {
			return nil, fmt.Errorf("%w: manifest names operator key %s, but it is signed by %s", ErrSignature, m.OperatorKeyID, pub.ID)
		}
	}
	if r.parts != nil {
		for _, p := range r.parts.parts {
			if p.h.BundleID != m.ID || p.h.Sequence != m.Sequence {
				return nil, &PartError{Index: p.h.Index, Path: p.path, Err: fmt.Errorf("%w: part of bundle %s sequence %d, but the manifest is of bundle %s sequence %d", ErrMalformed, p.h.BundleID, p.h.Sequence, m.ID, m.Sequence)}
			}
		}
	}

	// 3. README and 4. SHA256SUMS must be exactly what the manifest implies.
	want := readme(m)
	got, err := r.member(ReadmeName, int64(len(want)))
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got, want) {
		return nil, &MemberError{Name: ReadmeName, Index: 3, Err: fmt.Errorf("%w: differs from the README this manifest implies", ErrHashMismatch)}
	}
	if err := r.sums(sumsStream(m, r.mbytes, sigBytes, want), sumsSize(m)); err != nil {
		return nil, err
	}
	return r, nil
}

const sumsLineLen = 64 + 2 + len(BlobDir) + 64 + 1

func parseManifest(data []byte, lim Limits) (*Manifest, error) {
	var head struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, &MemberError{Name: ManifestName, Index: 1, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	if head.Format != Format {
		return nil, &MemberError{Name: ManifestName, Index: 1, Err: fmt.Errorf("%w: %q; this mirror reads %q, upgrade it", ErrFormat, clip(head.Format), Format)}
	}
	m := new(Manifest)
	if err := strictJSON(data, m); err != nil {
		return nil, &MemberError{Name: ManifestName, Index: 1, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	if err := m.ValidateLimits(lim); err != nil {
		return nil, err
	}
	return m, nil
}

// Manifest returns the checked manifest.
func (r *Reader) Manifest() *Manifest { return r.m }

// ManifestBytes returns the manifest exactly as signed.
func (r *Reader) ManifestBytes() []byte { return r.mbytes }

// Signature returns the operator's signature over ManifestBytes.
func (r *Reader) Signature() minisign.Signature { return r.sig }

// header reads the next tar header and checks what every member must be: a
// regular file with a clean name, within the member count.
func (r *Reader) header() (*tar.Header, error) {
	hdr, err := r.tr.Next()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
		return nil, r.fail(err)
	}
	r.members++
	idx := r.members
	if r.members > r.lim.MaxMembers {
		return nil, &MemberError{Name: hdr.Name, Index: idx, Err: fmt.Errorf("%w: more than %d members", ErrLimit, r.lim.MaxMembers)}
	}
	if err := checkPath(hdr.Name); err != nil {
		return nil, &MemberError{Name: clip(hdr.Name), Index: idx, Err: fmt.Errorf("%w: %v", ErrUnsafePath, err)}
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil, &MemberError{Name: hdr.Name, Index: idx, Err: fmt.Errorf("%w: type %q is not a regular file (links, directories and devices are refused)", ErrUnsafePath, hdr.Typeflag)}
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return nil, &MemberError{Name: hdr.Name, Index: idx, Err: fmt.Errorf("%w: sparse member", ErrUnsafePath)}
		}
	}
	if hdr.Size < 0 {
		return nil, &MemberError{Name: hdr.Name, Index: idx, Err: fmt.Errorf("%w: negative size", ErrMalformed)}
	}
	if hdr.Mode != 0o644 || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" || hdr.Linkname != "" {
		return nil, &MemberError{Name: hdr.Name, Index: idx, Err: fmt.Errorf("%w: header fields differ from the fixed ones (mode 0644, owner 0:0, no names)", ErrMalformed)}
	}
	observed, err := r.tap.take()
	if err != nil {
		return nil, &MemberError{Name: hdr.Name, Index: idx, Err: err}
	}
	pad := r.lastPad
	r.lastPad = (blockSize - hdr.Size%blockSize) % blockSize
	if r.m != nil {
		if err := r.checkMtime(hdr.Name, idx, hdr.ModTime); err != nil {
			return nil, err
		}
		if err := r.checkCanonical(hdr.Name, idx, pad, hdr.Size, observed); err != nil {
			return nil, err
		}
	} else {
		r.mtimes = append(r.mtimes, hdr.ModTime)
		r.pending = append(r.pending, observed)
		r.sizes = append(r.sizes, hdr.Size)
	}
	return hdr, nil
}

const blockSize = 512

// checkCanonical requires the bytes between two members' contents (the
// previous member's padding and this member's header blocks) to be exactly
// what the writer makes: a re-packed archive, or a flipped byte in a field
// that archive/tar ignores, is refused even where the content would check.
func (r *Reader) checkCanonical(name string, idx int, pad, size int64, observed []byte) error {
	var want bytes.Buffer
	want.Write(make([]byte, pad))
	tw := tar.NewWriter(&want)
	if err := tw.WriteHeader(memberHeader(name, size, r.m.Created)); err != nil {
		return &MemberError{Name: name, Index: idx, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	if !bytes.Equal(observed, want.Bytes()) {
		return &MemberError{Name: name, Index: idx, Err: fmt.Errorf("%w: tar header or padding bytes differ from the canonical form", ErrMalformed)}
	}
	return nil
}

// checkMtime requires a member's mtime to be the manifest's created time.
func (r *Reader) checkMtime(name string, idx int, t time.Time) error {
	if !t.Equal(r.m.Created.Truncate(time.Second)) {
		return &MemberError{Name: name, Index: idx, Err: fmt.Errorf("%w: mtime %s is not the manifest's created time", ErrMalformed, t.UTC().Format(time.RFC3339))}
	}
	return nil
}

// member reads the next member, which must be called name and be at most
// max bytes.
func (r *Reader) member(name string, max int64) ([]byte, error) {
	hdr, err := r.header()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: no member %s", ErrTruncated, name)
		}
		return nil, err
	}
	if hdr.Name != name {
		return nil, &MemberError{Name: hdr.Name, Index: r.members, Err: fmt.Errorf("%w: member %d must be %s", r.misplaced(hdr.Name), r.members, name)}
	}
	if hdr.Size > max {
		return nil, &MemberError{Name: name, Index: r.members, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrLimit, hdr.Size, max)}
	}
	r.tap.content = true
	data, err := io.ReadAll(io.LimitReader(r.tr, max+1))
	r.tap.content = false
	if err != nil {
		return nil, r.fail(err)
	}
	if int64(len(data)) != hdr.Size {
		return nil, &MemberError{Name: name, Index: r.members, Err: fmt.Errorf("%w: %d bytes, header says %d", ErrMalformed, len(data), hdr.Size)}
	}
	return data, nil
}

// sums compares SHA256SUMS with what it must be, streaming.
func (r *Reader) sums(want io.Reader, size int64) error {
	hdr, err := r.header()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: no member %s", ErrTruncated, SumsName)
		}
		return err
	}
	if hdr.Name != SumsName {
		return &MemberError{Name: hdr.Name, Index: r.members, Err: fmt.Errorf("%w: member %d must be %s", r.misplaced(hdr.Name), r.members, SumsName)}
	}
	if hdr.Size != size {
		return &MemberError{Name: SumsName, Index: r.members, Err: fmt.Errorf("%w: %d bytes, the manifest implies %d", ErrHashMismatch, hdr.Size, size)}
	}
	a, b := make([]byte, 32<<10), make([]byte, 32<<10)
	for {
		r.tap.content = true
		n, err := io.ReadFull(r.tr, a)
		r.tap.content = false
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return r.fail(err)
		}
		if _, werr := io.ReadFull(want, b[:n]); werr != nil || !bytes.Equal(a[:n], b[:n]) {
			return &MemberError{Name: SumsName, Index: r.members, Err: fmt.Errorf("%w: differs from the list this manifest implies", ErrHashMismatch)}
		}
		if err != nil {
			return nil
		}
	}
}

// misplaced classifies a member found where another was expected: a name
// seen before is a duplicate, a listed name due later is out of order
// (ErrMalformed), anything else is unlisted.
func (r *Reader) misplaced(name string) error {
	for i, fixed := range [...]string{ManifestName, SignatureName, ReadmeName, SumsName} {
		if name == fixed {
			if i < r.members-1 {
				return ErrDuplicate
			}
			return ErrMalformed
		}
	}
	if sum, ok := strings.CutPrefix(name, BlobDir); ok && r.m != nil {
		for i, b := range r.m.Blobs {
			if b.SHA256 == sum {
				if i < r.next {
					return ErrDuplicate
				}
				return ErrMalformed // listed, but out of order
			}
		}
	}
	return ErrUnlisted
}

// Next returns the next blob and a reader of its content. The content
// reader fails at its end with an error matching ErrHashMismatch (a
// *BlobError naming the blob) if the size or SHA-256 differ, so a consumer
// that commits only after io.EOF never makes a bad blob visible. A blob not
// read to its end is checked by the next call. After the last blob Next
// returns io.EOF, having checked that every listed blob came exactly once
// and that nothing (tar or zstd) follows.
func (r *Reader) Next() (BlobInfo, io.Reader, error) {
	if r.err != nil {
		return BlobInfo{}, nil, r.err
	}
	if err := r.ctx.Err(); err != nil {
		return BlobInfo{}, nil, err
	}
	if r.cur != nil {
		if _, err := io.Copy(io.Discard, r.cur); err != nil {
			return BlobInfo{}, nil, r.setErr(err)
		}
		r.cur = nil
	}
	if r.next == len(r.m.Blobs) {
		return BlobInfo{}, nil, r.setErr(r.finish())
	}
	b := r.m.Blobs[r.next]
	hdr, err := r.header()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: the archive ends after %d of %d blobs", ErrTruncated, r.next, len(r.m.Blobs))
		}
		return BlobInfo{}, nil, r.setErr(err)
	}
	if hdr.Name != BlobDir+b.SHA256 {
		return BlobInfo{}, nil, r.setErr(&MemberError{Name: hdr.Name, Index: r.members, Err: fmt.Errorf("%w: expected %s%s (blob %d in manifest order)", r.misplaced(hdr.Name), BlobDir, b.SHA256, r.next+1)})
	}
	if hdr.Size != b.Size {
		return BlobInfo{}, nil, r.setErr(&BlobError{SHA256: b.SHA256, Err: fmt.Errorf("%w: member is %d bytes, the manifest says %d", ErrHashMismatch, hdr.Size, b.Size)})
	}
	info := BlobInfo{Index: r.next, SHA256: b.SHA256, Size: b.Size}
	r.next++
	r.cur = &blobReader{r: r, info: info, h: sha256.New()}
	return info, r.cur, nil
}

func (r *Reader) setErr(err error) error {
	r.err = err
	return err
}

// finish checks the end: no further member, the tar end marker, nothing
// after it in the decompressed stream, one complete zstd frame, nothing
// after it in the file, and (for parts) every part's hash.
func (r *Reader) finish() error {
	hdr, err := r.tr.Next()
	if err == nil || (errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
		return &MemberError{Name: clip(hdr.Name), Index: r.members + 1, Err: fmt.Errorf("%w: after the last listed blob", r.misplaced(hdr.Name))}
	}
	if err != io.EOF {
		return r.fail(err)
	}
	observed, err := r.tap.take()
	if err != nil || !bytes.Equal(observed, make([]byte, r.lastPad+2*blockSize)) {
		return fmt.Errorf("%w: the tar end is not the canonical padding and two zero blocks", ErrMalformed)
	}
	var one [1]byte
	n, err := io.ReadFull(r.stream, one[:])
	if n > 0 {
		return fmt.Errorf("%w: data after the end of the tar archive", ErrTrailingData)
	}
	if err != io.EOF {
		return r.fail(err)
	}
	return io.EOF
}

// fail turns an error from the tar or zstd layers into this package's
// errors, blaming a damaged part when there is one.
func (r *Reader) fail(err error) error {
	if rawErr := r.rawFault(); rawErr != nil {
		return rawErr
	}
	var me *MemberError
	var be *BlobError
	var pe *PartError
	switch {
	case errors.As(err, &me), errors.As(err, &be), errors.As(err, &pe),
		errors.Is(err, ErrLimit), errors.Is(err, ErrTrailingData), errors.Is(err, ErrTruncated),
		errors.Is(err, ErrCorrupt), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong):
		return fmt.Errorf("%w: tar: %v", ErrMalformed, err)
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeTooSmall):
		return fmt.Errorf("%w: zstd window beyond %d bytes: %v", ErrLimit, r.lim.MaxWindowSize, err)
	}
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

// rawFault returns the fault of the raw side, if any: a damaged part
// (blamed after reading the rest of it) or a frame violation.
func (r *Reader) rawFault() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.parts != nil {
		if perr := r.parts.blame(); perr != nil {
			return perr
		}
	}
	return r.walker.err
}

type lockedReader struct {
	mu *sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// Close releases the files and the decoder.
func (r *Reader) Close() error {
	var err error
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
	if r.file != nil {
		err = r.file.Close()
		r.file = nil
	}
	if r.parts != nil {
		if cerr := r.parts.Close(); err == nil {
			err = cerr
		}
		r.parts = nil
	}
	if r.err == nil {
		r.err = errors.New("bundle reader is closed")
	}
	return err
}

// streamReader is the decompressed stream: bounded in size, with decoder
// errors translated, and end-of-stream checked against the frame walker.
type streamReader struct {
	r   *Reader
	n   int64
	max int64
	err error
}

func (s *streamReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.dec.Read(p)
	s.n += int64(n)
	if s.n > s.max {
		s.err = fmt.Errorf("%w: more than %d decompressed bytes", ErrLimit, s.max)
		return 0, s.err
	}
	switch {
	case err == io.EOF:
		s.r.mu.Lock()
		defer s.r.mu.Unlock()
		if werr := s.r.walker.done(); werr != nil {
			s.err = werr
			if s.r.parts != nil {
				if perr := s.r.parts.blame(); perr != nil {
					s.err = perr
				}
			}
			return n, s.err
		}
		if s.r.file != nil {
			// The walker saw the frame end; the decoder must have read
			// the whole file.
			var one [1]byte
			if k, _ := s.r.file.Read(one[:]); k > 0 {
				s.err = fmt.Errorf("%w: data after the zstd frame", ErrTrailingData)
				return n, s.err
			}
		}
		if s.r.parts != nil {
			// Reach the parts' end so that the last part's hash and the
			// joined hash are checked.
			var one [1]byte
			if k, perr := s.r.parts.Read(one[:]); k > 0 || perr != io.EOF {
				if perr == nil || perr == io.EOF {
					perr = fmt.Errorf("%w: data after the zstd frame", ErrTrailingData)
				}
				s.err = perr
				return n, s.err
			}
		}
		s.err = io.EOF
		return n, io.EOF
	case err != nil:
		s.err = s.r.fail(err)
		return n, s.err
	}
	return n, nil
}

// tapReader records the decompressed bytes read while not in content mode:
// tar headers, padding and the end marker, for checkCanonical.
type tapReader struct {
	r       io.Reader
	content bool
	buf     []byte
	over    bool
}

// maxTap bounds the recorded bytes between two contents (a header with PAX
// records for a large member is about 2 KiB).
const maxTap = 64 << 10

func (t *tapReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if !t.content && n > 0 {
		if len(t.buf)+n > maxTap {
			t.over = true
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	return n, err
}

// take returns and forgets the recorded bytes.
func (t *tapReader) take() ([]byte, error) {
	b, over := t.buf, t.over
	t.buf, t.over = nil, false
	if over {
		return nil, fmt.Errorf("%w: more than %d bytes of tar headers between two members", ErrLimit, maxTap)
	}
	return b, nil
}

// blobReader is the content of one blob, hashed while read.
type blobReader struct {
	r    *Reader
	info BlobInfo
	h    hash.Hash
	n    int64
	err  error
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if err := b.r.ctx.Err(); err != nil {
		b.err = err
		b.r.err = err
		return 0, err
	}
	b.r.tap.content = true
	n, err := b.r.tr.Read(p)
	b.r.tap.content = false
	b.h.Write(p[:n])
	b.n += int64(n)
	switch {
	case err == io.EOF:
		if got := hex.EncodeToString(b.h.Sum(nil)); b.n != b.info.Size || got != b.info.SHA256 {
			b.err = &BlobError{SHA256: b.info.SHA256, Err: fmt.Errorf("%w: content has SHA-256 %s (%d bytes), the manifest says %d bytes", ErrHashMismatch, got, b.n, b.info.Size)}
			if perr := b.r.rawFault(); perr != nil {
				b.err = perr
			}
			b.r.err = b.err
			return n, b.err
		}
		b.err = io.EOF
	case err != nil:
		b.err = b.r.fail(err)
		b.r.err = b.err
	}
	return n, b.err
}
