package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"

	"github.com/mirror-tool/mirror/internal/minisign"
)

// Split bundles. Part i of n is the file NAME.tar.zst.part-NNN (NNN = i,
// three digits) made of a PartHeaderSize-byte header and then a raw slice of
// the NAME.tar.zst stream. The header is text:
//
//	mirror-bundle-part/v1\n
//	<header JSON, one line>\n
//	<minisign signature of the JSON line including its \n: 4 lines>
//	\n\n... (padding with newlines up to PartHeaderSize bytes)
const (
	PartFormat     = "mirror-bundle-part/v1"
	PartHeaderSize = 4096
	MaxParts       = 999
	partSuffix     = ".part-"
)

// PartHeader is the signed header of one part.
type PartHeader struct {
	Format      string `json:"format"`
	BundleID    string `json:"bundle_id"`
	Sequence    uint64 `json:"sequence"`
	Name        string `json:"name"`   // NAME.tar.zst
	Index       int    `json:"index"`  // 1-based
	Count       int    `json:"count"`  // parts in all
	Offset      int64  `json:"offset"` // of this payload in the joined stream
	Size        int64  `json:"size"`   // of this payload
	SHA256      string `json:"sha256"` // of this payload
	TotalSize   int64  `json:"total_size"`
	TotalSHA256 string `json:"total_sha256"` // of the joined stream
}

// PartName returns the file name of part index (1-based) of bundle file
// name (NAME.tar.zst).
func PartName(name string, index int) string {
	return fmt.Sprintf("%s%s%03d", name, partSuffix, index)
}

func partComment(h *PartHeader) string {
	return fmt.Sprintf("%s id=%s part=%d/%d", PartFormat, h.BundleID, h.Index, h.Count)
}

// marshalPartHeader returns the PartHeaderSize-byte header block.
func marshalPartHeader(h *PartHeader, key minisign.PrivateKey) ([]byte, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	js = append(js, '\n')
	sig, err := key.Sign(bytes.NewReader(js), partComment(h), untrustedComment(key.ID))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(PartFormat + "\n")
	b.Write(js)
	b.Write(sig.Marshal())
	if b.Len() > PartHeaderSize {
		return nil, fmt.Errorf("part header is %d bytes, more than %d", b.Len(), PartHeaderSize)
	}
	b.Write(bytes.Repeat([]byte{'\n'}, PartHeaderSize-b.Len()))
	return b.Bytes(), nil
}

// isPartHeader reports whether a file starts like a part.
func isPartHeader(prefix []byte) bool {
	return bytes.HasPrefix(prefix, []byte(PartFormat+"\n"))
}

// parsePartHeader checks a header block: its layout, then (when pub is not
// nil) the signature over the JSON line before parsing it, then the fields.
func parsePartHeader(block []byte, pub *minisign.PublicKey) (*PartHeader, error) {
	if len(block) != PartHeaderSize {
		return nil, fmt.Errorf("%w: header is %d bytes, want %d", ErrTruncated, len(block), PartHeaderSize)
	}
	rest, ok := bytes.CutPrefix(block, []byte(PartFormat+"\n"))
	if !ok {
		return nil, fmt.Errorf("%w: not a %s part", ErrFormat, PartFormat)
	}
	var lines [5][]byte // JSON + 4 signature lines
	for i := range lines {
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return nil, fmt.Errorf("%w: part header has fewer than 6 lines", ErrMalformed)
		}
		lines[i], rest = rest[:j+1], rest[j+1:]
	}
	for _, c := range rest {
		if c != '\n' {
			return nil, fmt.Errorf("%w: part header padding is not newlines", ErrMalformed)
		}
	}
	js := lines[0]
	sig, err := minisign.ParseSignature(bytes.Join(lines[1:], nil))
	if err != nil {
		return nil, fmt.Errorf("%w: part header signature: %v", ErrMalformed, err)
	}
	if pub != nil {
		if err := checkSig(*pub, sig, js); err != nil {
			return nil, err
		}
	}
	var h PartHeader
	if err := strictJSON(js, &h); err != nil {
		return nil, fmt.Errorf("%w: part header: %v", ErrMalformed, err)
	}
	switch {
	case h.Format != PartFormat:
		return nil, fmt.Errorf("%w: part header format %q", ErrFormat, clip(h.Format))
	case !isHex(h.BundleID, 16, 64):
		return nil, fmt.Errorf("%w: part header bundle_id %q", ErrMalformed, clip(h.BundleID))
	case h.Count < 1 || h.Count > MaxParts:
		return nil, fmt.Errorf("%w: part count %d is outside 1..%d", ErrLimit, h.Count, MaxParts)
	case h.Index < 1 || h.Index > h.Count:
		return nil, fmt.Errorf("%w: part index %d is outside 1..%d", ErrMalformed, h.Index, h.Count)
	case h.Size < 1 || h.Offset < 0 || h.TotalSize < 1 || h.Offset > h.TotalSize-h.Size:
		return nil, fmt.Errorf("%w: part offset %d size %d total %d", ErrMalformed, h.Offset, h.Size, h.TotalSize)
	case !isHex(h.SHA256, 64, 64) || !isHex(h.TotalSHA256, 64, 64):
		return nil, fmt.Errorf("%w: part header hashes", ErrMalformed)
	case checkSegment(h.Name) != nil:
		return nil, fmt.Errorf("%w: part header name %q", ErrUnsafePath, clip(h.Name))
	}
	if sig.UntrustedComment != untrustedComment(sig.KeyID) {
		return nil, fmt.Errorf("%w: part header untrusted comment %q is not the one this format writes", ErrMalformed, clip(sig.UntrustedComment))
	}
	if pub != nil && sig.TrustedComment != partComment(&h) {
		return nil, fmt.Errorf("%w: trusted comment %q does not match the header", ErrSignature, clip(sig.TrustedComment))
	}
	return &h, nil
}

// checkSig verifies a minisign signature over data with the operator key.
func checkSig(pub minisign.PublicKey, sig minisign.Signature, data []byte) error {
	if sig.KeyID != pub.ID {
		return fmt.Errorf("%w: signed by key %s, but the operator key is %s; check that --pub is this operator's key", ErrSignature, sig.KeyID, pub.ID)
	}
	if !sig.Prehashed {
		return fmt.Errorf("%w: legacy (non-prehashed) signature; bundles use prehashed signatures", ErrSignature)
	}
	if err := pub.Verify(sig, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("%w: key %s: %v", ErrSignature, pub.ID, err)
	}
	return nil
}

// strictJSON decodes exactly one JSON value with no unknown fields and
// nothing after it.
func strictJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// part is one checked part file. Files are opened one at a time while
// streaming, so that 999 parts do not hold 999 descriptors.
type part struct {
	path string
	h    *PartHeader
}

// readPartHeader reads and checks the header of the part file at path, and
// that the file has the size the header says.
func readPartHeader(path string, pub *minisign.PublicKey) (*PartHeader, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	block := make([]byte, PartHeaderSize)
	n, err := io.ReadFull(f, block)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, &PartError{Path: path, Err: err}
	}
	if !isPartHeader(block[:n]) {
		return nil, &PartError{Path: path, Err: fmt.Errorf("%w: not a bundle part (no %s header); give either one bundle file or all its parts", ErrMalformed, PartFormat)}
	}
	h, err := parsePartHeader(block[:n], pub)
	if err != nil {
		return nil, &PartError{Path: path, Err: err}
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, &PartError{Index: h.Index, Path: path, Err: err}
	}
	if fi.Size() != PartHeaderSize+h.Size {
		kind := ErrTruncated
		if fi.Size() > PartHeaderSize+h.Size {
			kind = ErrTrailingData
		}
		return nil, &PartError{Index: h.Index, Path: path, Err: fmt.Errorf("%w: file is %d bytes, its header says %d", kind, fi.Size(), PartHeaderSize+h.Size)}
	}
	return h, nil
}

// openParts opens and checks the headers of a split bundle's parts, given in
// any order, and returns them in order. Every part must be present once,
// belong to the same bundle and have the size its header says.
func openParts(paths []string, pub *minisign.PublicKey) (parts []*part, err error) {
	if len(paths) > MaxParts {
		return nil, fmt.Errorf("%w: %d files, at most %d parts", ErrLimit, len(paths), MaxParts)
	}
	defer func() {
		if err != nil {
			parts = nil
		}
	}()
	for _, path := range paths {
		p := &part{path: path}
		parts = append(parts, p)
		var err error
		if p.h, err = readPartHeader(path, pub); err != nil {
			return parts, err
		}
	}
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].h.Index < parts[j].h.Index })
	first := parts[0].h
	// A part whose bundle differs from the majority is the foreign one;
	// with no majority, the first part in order is the reference.
	ref := first
	votes := map[string]int{}
	for _, p := range parts {
		votes[p.h.BundleID]++
	}
	for _, p := range parts {
		if votes[p.h.BundleID] > votes[ref.BundleID] {
			ref = p.h
		}
	}
	var offset int64
	next := 1
	for _, p := range parts {
		h := p.h
		if h.BundleID != ref.BundleID || h.Count != ref.Count || h.TotalSize != ref.TotalSize ||
			h.TotalSHA256 != ref.TotalSHA256 || h.Name != ref.Name || h.Sequence != ref.Sequence {
			return parts, &PartError{Index: h.Index, Path: p.path, Err: fmt.Errorf("%w: part of bundle %s (%s), not of %s (%s)", ErrMalformed, h.BundleID, h.Name, ref.BundleID, ref.Name)}
		}
		if h.Index < next {
			return parts, &PartError{Index: h.Index, Path: p.path, Err: fmt.Errorf("%w: part %d given twice", ErrDuplicate, h.Index)}
		}
		if h.Index > next {
			return parts, &PartError{Index: next, Err: fmt.Errorf("%w: part %d of %d is missing (%s)", ErrTruncated, next, ref.Count, PartName(ref.Name, next))}
		}
		if h.Offset != offset {
			return parts, &PartError{Index: h.Index, Path: p.path, Err: fmt.Errorf("%w: offset %d, want %d", ErrMalformed, h.Offset, offset)}
		}
		offset += h.Size
		next++
	}
	if next <= ref.Count {
		return parts, &PartError{Index: next, Err: fmt.Errorf("%w: part %d of %d is missing (%s)", ErrTruncated, next, ref.Count, PartName(ref.Name, next))}
	}
	if offset != ref.TotalSize {
		return parts, &PartError{Index: ref.Count, Path: parts[len(parts)-1].path, Err: fmt.Errorf("%w: parts add up to %d bytes, headers say %d", ErrMalformed, offset, ref.TotalSize)}
	}
	return parts, nil
}

// partReader streams the payloads of checked parts in order, checking each
// part's SHA-256 (signed in its header) at its end. The joined stream's
// total_sha256 is implied: the parts are contiguous and each is checked.
type partReader struct {
	parts []*part
	cur   int
	f     *os.File // the current part
	left  int64
	h     hash.Hash
	err   error
}

func newPartReader(parts []*part) *partReader {
	return &partReader{parts: parts, cur: -1, h: sha256.New()}
}

func (r *partReader) advance() error {
	if r.cur >= 0 {
		p := r.parts[r.cur]
		if got := hex.EncodeToString(r.h.Sum(nil)); got != p.h.SHA256 {
			return &PartError{Index: p.h.Index, Path: p.path, Err: fmt.Errorf("%w: payload SHA-256 is %s, its signed header says %s; copy this part again", ErrHashMismatch, got, p.h.SHA256)}
		}
		r.f.Close()
		r.f = nil
	}
	r.cur++
	if r.cur == len(r.parts) {
		return io.EOF
	}
	p := r.parts[r.cur]
	f, err := openFile(p.path)
	if err != nil {
		return &PartError{Index: p.h.Index, Path: p.path, Err: err}
	}
	r.f = f
	if fi, err := f.Stat(); err != nil || fi.Size() != PartHeaderSize+p.h.Size {
		return &PartError{Index: p.h.Index, Path: p.path, Err: fmt.Errorf("%w: the file changed since its header was checked", ErrMalformed)}
	}
	if _, err := f.Seek(PartHeaderSize, io.SeekStart); err != nil {
		return &PartError{Index: p.h.Index, Path: p.path, Err: err}
	}
	r.h.Reset()
	r.left = p.h.Size
	return nil
}

func (r *partReader) Read(b []byte) (int, error) {
	for r.err == nil && r.left == 0 {
		r.err = r.advance()
	}
	if r.err != nil {
		return 0, r.err
	}
	if int64(len(b)) > r.left {
		b = b[:r.left]
	}
	p := r.parts[r.cur]
	n, err := r.f.Read(b)
	r.h.Write(b[:n])
	r.left -= int64(n)
	if err == io.EOF && r.left > 0 {
		r.err = &PartError{Index: p.h.Index, Path: p.path, Err: fmt.Errorf("%w: file shrank while reading", ErrTruncated)}
		return n, r.err
	}
	if err != nil && err != io.EOF {
		r.err = &PartError{Index: p.h.Index, Path: p.path, Err: err}
		return n, r.err
	}
	return n, nil
}

// blame reads the rest of the current part and returns its PartError if its
// hash is wrong, so that damage is blamed on the part that holds it rather
// than reported as a decoding error. It returns nil when the part is fine.
func (r *partReader) blame() error {
	if r.err != nil {
		var pe *PartError
		if errors.As(r.err, &pe) {
			return r.err
		}
		return nil
	}
	if r.cur < 0 || r.cur >= len(r.parts) {
		return nil
	}
	buf := make([]byte, 32<<10)
	for r.left > 0 {
		if _, err := r.Read(buf); err != nil {
			return r.err
		}
	}
	p := r.parts[r.cur]
	if got := hex.EncodeToString(r.h.Sum(nil)); got != p.h.SHA256 {
		return &PartError{Index: p.h.Index, Path: p.path, Err: fmt.Errorf("%w: payload SHA-256 is %s, its signed header says %s; copy this part again", ErrHashMismatch, got, p.h.SHA256)}
	}
	return nil
}

func (r *partReader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
