package bundle

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mirror-tool/mirror/internal/treepath"
)

// Format is the version line of this bundle format: the manifest's "format"
// field. A reader refuses any other value.
const Format = "mirror-bundle/v1"

// Manifest is the signed description of a bundle (member 1, manifest.json).
type Manifest struct {
	Format        string     `json:"format"`
	ID            string     `json:"id"` // lowercase hex, unique per bundle (see ComputeID)
	Sequence      uint64     `json:"sequence"`
	BaseSequence  uint64     `json:"base_sequence"` // 0 = full bundle
	Created       time.Time  `json:"created"`
	Expires       time.Time  `json:"expires"`
	OperatorKeyID string     `json:"operator_key_id"` // minisign key id, 16 upper-case hex digits
	ToolVersion   string     `json:"tool_version"`
	Sources       []Source   `json:"sources"`
	Trust         Trust      `json:"trust"`
	Packages      []Package  `json:"packages"`
	Tree          []Entry    `json:"tree"`
	Blobs         []Blob     `json:"blobs"` // blobs THIS bundle carries, in member order
	Rejected      []Rejected `json:"rejected"`
}

// Source is an upstream the bundle's packages came from.
type Source struct {
	Name string `json:"name"`
	Type string `json:"type"`
	URL  string `json:"url"`
}

// Trust records the trust file the packages were checked against.
type Trust struct {
	SHA256 string `json:"sha256"` // SHA-256 of File, lowercase hex
	File   string `json:"file"`   // the trust TOML text as used
}

// Package is one accepted package.
type Package struct {
	Source     string             `json:"source"`
	Name       string             `json:"name"`
	Version    string             `json:"version"`
	Path       string             `json:"path"` // publish-tree path
	Size       int64              `json:"size"`
	SHA256     string             `json:"sha256"`
	Signatures []PackageSignature `json:"signatures"`
	Keys       []string           `json:"keys"` // names of the trust keys that passed
}

// PackageSignature is an upstream signature that was checked for a package.
type PackageSignature struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Scheme string `json:"scheme"`
}

// Entry is one file of the publish tree.
type Entry struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Blob is content carried in this bundle as member blobs/<SHA256>.
type Blob struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Rejected is a package that was not bundled, with the reason.
type Rejected struct {
	Source string `json:"source"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// IsDelta reports whether the bundle carries only what changed since
// BaseSequence.
func (m *Manifest) IsDelta() bool { return m.BaseSequence != 0 }

// TotalBlobSize is the sum of the sizes of the blobs carried.
func (m *Manifest) TotalBlobSize() int64 {
	var n int64
	for _, b := range m.Blobs {
		n += b.Size
	}
	return n
}

// ComputeID returns the bundle id derived from the fields that make a bundle
// unique: SHA-256 over the format, sequence, base sequence, created and
// expiry times, operator key id and the blob list, truncated to 128 bits
// (32 hex digits). Write fills an empty ID with it.
func (m *Manifest) ComputeID() string {
	h := sha256.New()
	var b [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(b[:], uint64(len(s)))
		h.Write(b[:])
		h.Write([]byte(s))
	}
	put(Format)
	put(fmt.Sprint(m.Sequence))
	put(fmt.Sprint(m.BaseSequence))
	put(m.Created.UTC().Format(time.RFC3339Nano))
	put(m.Expires.UTC().Format(time.RFC3339Nano))
	put(m.OperatorKeyID)
	for _, bl := range m.Blobs {
		put(bl.SHA256)
		put(fmt.Sprint(bl.Size))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Limits bound everything a reader accepts from a bundle. Exceeding one is
// an error matching ErrLimit, never a silent truncation.
type Limits struct {
	MaxManifestSize int64 // bytes of manifest.json
	MaxBlobs        int   // blobs carried
	MaxTreeEntries  int   // publish-tree entries
	MaxPackages     int   // packages, and rejected packages
	MaxBlobSize     int64 // one blob, tree entry or package
	MaxTotalSize    int64 // sum of the blobs, and decompressed bytes
	MaxMembers      int   // tar members
	MaxWindowSize   int64 // zstd window (decoder memory); 0 = DefaultLimits'
}

// DefaultLimits are generous for real mirrors and still keep a hostile
// bundle from exhausting memory or disk.
var DefaultLimits = Limits{
	MaxManifestSize: 64 << 20,
	MaxBlobs:        1 << 20,
	MaxTreeEntries:  2 << 20,
	MaxPackages:     1 << 20,
	MaxBlobSize:     64 << 30,
	MaxTotalSize:    4 << 40,
	MaxMembers:      1<<20 + 4,
	MaxWindowSize:   MaxWindowSize,
}

// Fixed limits of the format (not tunable: a conforming writer never
// exceeds them).
const (
	MaxPathLen      = 4096 // bytes of a path
	MaxSegmentLen   = 255  // bytes of one path segment
	MaxTextLen      = 4096 // names, versions, URLs, reasons
	MaxListLen      = 64   // signatures or keys of one package
	MaxSources      = 1024 // sources
	MaxTrustFileLen = 4 << 20
	// MaxWindowSize is the largest zstd window a writer may use and the
	// default the reader accepts (memory bound against decompression bombs).
	MaxWindowSize = 8 << 20
)

// Validate checks everything a reader must enforce on a manifest, with
// DefaultLimits. See ValidateLimits.
func (m *Manifest) Validate() error { return m.ValidateLimits(DefaultLimits) }

func field(f string, err error, format string, args ...any) error {
	return &ManifestError{Field: f, Err: fmt.Errorf("%w: "+format, append([]any{err}, args...)...)}
}

// ValidateLimits checks the manifest: the format is known; every path is
// clean and relative (no "..", no absolute path, no empty segment, no
// backslash, NUL or control character, no case-insensitive duplicate, no
// file that is also a directory); hashes are 64 lowercase hex digits; sizes
// and counts are within lim; no blob or path is listed twice; every tree
// entry, package and signature refers to a blob carried here (a delta may
// refer to blobs of its base); expires is after created. The error matches
// ErrFormat, ErrMalformed, ErrUnsafePath, ErrDuplicate or ErrLimit and is a
// *ManifestError naming the field.
func (m *Manifest) ValidateLimits(lim Limits) error {
	if m.Format != Format {
		return field("format", ErrFormat, "%q, this reader knows %q", clip(m.Format), Format)
	}
	if !isHex(m.ID, 16, 64) {
		return field("id", ErrMalformed, "%q is not 16 to 64 lowercase hex digits", clip(m.ID))
	}
	if m.Sequence == 0 {
		return field("sequence", ErrMalformed, "must be at least 1")
	}
	if m.BaseSequence >= m.Sequence {
		return field("base_sequence", ErrMalformed, "%d is not below sequence %d", m.BaseSequence, m.Sequence)
	}
	if m.Created.IsZero() {
		return field("created", ErrMalformed, "missing")
	}
	if !m.Expires.After(m.Created) {
		return field("expires", ErrMalformed, "%s is not after created %s", m.Expires.Format(time.RFC3339), m.Created.Format(time.RFC3339))
	}
	if !isUpperHex(m.OperatorKeyID, 16) {
		return field("operator_key_id", ErrMalformed, "%q is not 16 upper-case hex digits", clip(m.OperatorKeyID))
	}
	if err := checkText(m.ToolVersion, 256, false); err != nil {
		return field("tool_version", ErrMalformed, "%v", err)
	}
	// Counts first, so that nothing below loops over an oversized list.
	switch {
	case len(m.Sources) > MaxSources:
		return field("sources", ErrLimit, "%d sources, limit %d", len(m.Sources), MaxSources)
	case len(m.Packages) > lim.MaxPackages:
		return field("packages", ErrLimit, "%d packages, limit %d", len(m.Packages), lim.MaxPackages)
	case len(m.Rejected) > lim.MaxPackages:
		return field("rejected", ErrLimit, "%d rejected packages, limit %d", len(m.Rejected), lim.MaxPackages)
	case len(m.Tree) > lim.MaxTreeEntries:
		return field("tree", ErrLimit, "%d entries, limit %d", len(m.Tree), lim.MaxTreeEntries)
	case len(m.Blobs) > lim.MaxBlobs:
		return field("blobs", ErrLimit, "%d blobs, limit %d", len(m.Blobs), lim.MaxBlobs)
	case len(m.Blobs)+fixedMembers > lim.MaxMembers:
		return field("blobs", ErrLimit, "%d members, limit %d", len(m.Blobs)+fixedMembers, lim.MaxMembers)
	case len(m.Trust.File) > MaxTrustFileLen:
		return field("trust.file", ErrLimit, "%d bytes, limit %d", len(m.Trust.File), MaxTrustFileLen)
	}

	sources := make(map[string]bool, len(m.Sources))
	for i, s := range m.Sources {
		f := fmt.Sprintf("sources[%d]", i)
		if err := checkSegment(s.Name); err != nil {
			return field(f+".name", ErrUnsafePath, "%v", err)
		}
		if sources[s.Name] {
			return field(f+".name", ErrDuplicate, "source %q listed twice", s.Name)
		}
		sources[s.Name] = true
		if err := checkText(s.Type, 64, true); err != nil {
			return field(f+".type", ErrMalformed, "%v", err)
		}
		if err := checkText(s.URL, MaxTextLen, false); err != nil {
			return field(f+".url", ErrMalformed, "%v", err)
		}
	}

	if m.Trust.File != "" || m.Trust.SHA256 != "" {
		sum := sha256.Sum256([]byte(m.Trust.File))
		if m.Trust.SHA256 != hex.EncodeToString(sum[:]) {
			return field("trust.sha256", ErrHashMismatch, "is not the SHA-256 of trust.file")
		}
	}

	blobs := make(map[string]int64, len(m.Blobs))
	var total int64
	for i, b := range m.Blobs {
		f := fmt.Sprintf("blobs[%d]", i)
		if !isHex(b.SHA256, 64, 64) {
			return field(f+".sha256", ErrMalformed, "%q is not 64 lowercase hex digits", clip(b.SHA256))
		}
		if b.Size < 0 || b.Size > lim.MaxBlobSize {
			return field(f+".size", ErrLimit, "%d is outside 0..%d", b.Size, lim.MaxBlobSize)
		}
		if _, dup := blobs[b.SHA256]; dup {
			return field(f+".sha256", ErrDuplicate, "blob %s listed twice", b.SHA256)
		}
		blobs[b.SHA256] = b.Size
		total += b.Size
		if total > lim.MaxTotalSize {
			return field("blobs", ErrLimit, "total size beyond %d bytes", lim.MaxTotalSize)
		}
	}
	// available reports whether content is carried here or, for a delta,
	// may come from the base; a carried blob must have the listed size.
	available := func(f, sum string, size int64) error {
		if !isHex(sum, 64, 64) {
			return field(f+".sha256", ErrMalformed, "%q is not 64 lowercase hex digits", clip(sum))
		}
		bs, ok := blobs[sum]
		switch {
		case ok && size >= 0 && bs != size:
			return field(f+".size", ErrHashMismatch, "%d, but blob %s is %d bytes", size, sum, bs)
		case !ok && !m.IsDelta():
			return field(f+".sha256", ErrMalformed, "blob %s is not carried by this full bundle", sum)
		}
		return nil
	}

	tree := make(map[string]Entry, len(m.Tree))
	paths := treepath.NewSet(len(m.Tree))
	for i, e := range m.Tree {
		f := fmt.Sprintf("tree[%d]", i)
		if err := checkPath(e.Path); err != nil {
			return field(f+".path", ErrUnsafePath, "%v", err)
		}
		var clash *treepath.Clash
		if err := paths.Add(e.Path); errors.As(err, &clash) {
			return field(f+".path", ErrDuplicate, "path %q %s", clip(e.Path), clash.Reason())
		}
		if e.Size < 0 || e.Size > lim.MaxBlobSize {
			return field(f+".size", ErrLimit, "%d is outside 0..%d", e.Size, lim.MaxBlobSize)
		}
		if err := available(f, e.SHA256, e.Size); err != nil {
			return err
		}
		tree[e.Path] = e
	}

	for i, p := range m.Packages {
		f := fmt.Sprintf("packages[%d]", i)
		if !sources[p.Source] {
			return field(f+".source", ErrMalformed, "%q is not a listed source", clip(p.Source))
		}
		if err := checkText(p.Name, MaxTextLen, true); err != nil {
			return field(f+".name", ErrMalformed, "%v", err)
		}
		if err := checkText(p.Version, 256, false); err != nil {
			return field(f+".version", ErrMalformed, "%v", err)
		}
		if err := checkPath(p.Path); err != nil {
			return field(f+".path", ErrUnsafePath, "%v", err)
		}
		if p.Size < 0 || p.Size > lim.MaxBlobSize {
			return field(f+".size", ErrLimit, "%d is outside 0..%d", p.Size, lim.MaxBlobSize)
		}
		if err := available(f, p.SHA256, p.Size); err != nil {
			return err
		}
		if e, ok := tree[p.Path]; ok && (e.SHA256 != p.SHA256 || e.Size != p.Size) {
			return field(f+".sha256", ErrHashMismatch, "package %s differs from tree entry %s", p.Name, p.Path)
		}
		if len(p.Signatures) > MaxListLen || len(p.Keys) > MaxListLen {
			return field(f, ErrLimit, "more than %d signatures or keys", MaxListLen)
		}
		for j, s := range p.Signatures {
			sf := fmt.Sprintf("%s.signatures[%d]", f, j)
			if err := checkPath(s.Path); err != nil {
				return field(sf+".path", ErrUnsafePath, "%v", err)
			}
			if err := checkText(s.Scheme, 64, true); err != nil {
				return field(sf+".scheme", ErrMalformed, "%v", err)
			}
			if err := available(sf, s.SHA256, -1); err != nil {
				return err
			}
			if e, ok := tree[s.Path]; ok && e.SHA256 != s.SHA256 {
				return field(sf+".sha256", ErrHashMismatch, "signature differs from tree entry %s", s.Path)
			}
		}
		for j, k := range p.Keys {
			if err := checkText(k, 256, true); err != nil {
				return field(fmt.Sprintf("%s.keys[%d]", f, j), ErrMalformed, "%v", err)
			}
		}
	}

	for i, r := range m.Rejected {
		f := fmt.Sprintf("rejected[%d]", i)
		if !sources[r.Source] {
			return field(f+".source", ErrMalformed, "%q is not a listed source", clip(r.Source))
		}
		if err := checkText(r.Name, MaxTextLen, true); err != nil {
			return field(f+".name", ErrMalformed, "%v", err)
		}
		if err := checkReason(r.Reason); err != nil {
			return field(f+".reason", ErrMalformed, "%v", err)
		}
	}
	return nil
}

// fixedMembers are the members before the blobs.
const fixedMembers = 4

func isHex(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isUpperHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// clip shortens hostile text quoted in an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// checkText accepts valid UTF-8 without control characters, at most max
// bytes, non-empty when required.
func checkText(s string, max int, required bool) error {
	switch {
	case required && s == "":
		return errors.New("empty")
	case len(s) > max:
		return fmt.Errorf("longer than %d bytes", max)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}

// checkReason is checkText that also allows tabs and newlines (reasons are
// often multi-line error messages).
func checkReason(s string) error {
	return checkText(strings.NewReplacer("\n", " ", "\t", " ").Replace(s), MaxTextLen, true)
}

// checkSegment accepts one clean path segment.
func checkSegment(s string) error {
	switch {
	case s == "":
		return errors.New("empty path segment")
	case s == "." || s == "..":
		return fmt.Errorf("path segment %q", s)
	case len(s) > MaxSegmentLen:
		return fmt.Errorf("path segment longer than %d bytes", MaxSegmentLen)
	case strings.ContainsAny(s, "/\\"):
		return fmt.Errorf("%q contains a slash or backslash", clip(s))
	}
	if err := checkText(s, MaxSegmentLen, true); err != nil {
		return fmt.Errorf("path segment %q: %w", clip(s), err)
	}
	return nil
}

// checkPath accepts a clean relative slash-separated path.
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > MaxPathLen:
		return fmt.Errorf("path longer than %d bytes", MaxPathLen)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("absolute path %q", clip(p))
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("path %q contains NUL", clip(p))
	case strings.ContainsRune(p, '\\'):
		return fmt.Errorf("path %q contains a backslash", clip(p))
	}
	for seg := range strings.SplitSeq(p, "/") {
		if err := checkSegment(seg); err != nil {
			return fmt.Errorf("path %q: %w", clip(p), err)
		}
	}
	return nil
}
