package bundle

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package matches (errors.Is)
// exactly the sentinels that describe it, so callers can branch without
// looking at message text.
var (
	// ErrSignature: the operator signature over the manifest (or over a part
	// header) is invalid, or was made by another key.
	ErrSignature = errors.New("operator signature check failed")
	// ErrFormat: the manifest or part header names a format this reader does
	// not know.
	ErrFormat = errors.New("unknown bundle format")
	// ErrMalformed: the bundle does not follow the format (wrong member
	// order or name, bad JSON, invalid manifest field, ...).
	ErrMalformed = errors.New("malformed bundle")
	// ErrLimit: a size or a count is beyond the reader's Limits.
	ErrLimit = errors.New("bundle exceeds a limit")
	// ErrHashMismatch: content differs in size or SHA-256 from what the
	// signed manifest (or a signed part header) says.
	ErrHashMismatch = errors.New("size or SHA-256 mismatch")
	// ErrUnlisted: a tar member that the manifest does not list.
	ErrUnlisted = errors.New("member not listed in the manifest")
	// ErrDuplicate: a member, blob, path or part that appears twice.
	ErrDuplicate = errors.New("duplicate entry")
	// ErrUnsafePath: a path that is absolute, has "..", empty segments,
	// backslashes, NUL or a case-insensitive collision, or a member that is
	// not a regular file (link, directory, device).
	ErrUnsafePath = errors.New("unsafe path or member type")
	// ErrTrailingData: bytes after the end of the tar archive or after the
	// one zstd frame.
	ErrTrailingData = errors.New("trailing data after the bundle")
	// ErrCorrupt: the zstd stream cannot be decompressed.
	ErrCorrupt = errors.New("corrupt compressed stream")
	// ErrTruncated: the bundle ends before its end.
	ErrTruncated = errors.New("bundle is truncated")
	// ErrPart: a part of a split bundle is missing, duplicated, foreign or
	// damaged; the error is a *PartError naming it.
	ErrPart = errors.New("bad bundle part")
	// ErrNotRegular: a bundle file given to read is not a regular file (a
	// FIFO or a device would block the reader forever).
	ErrNotRegular = errors.New("not a regular file")
)

// PartError names the part of a split bundle that is at fault. Index is the
// 1-based part number (0 when unknown), Path the file (empty for a missing
// part). It matches ErrPart and Err.
type PartError struct {
	Index int
	Path  string
	Err   error
}

func (e *PartError) Error() string {
	switch {
	case e.Path == "":
		return fmt.Sprintf("part %d: %v", e.Index, e.Err)
	case e.Index == 0:
		return fmt.Sprintf("part %s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("part %d (%s): %v", e.Index, e.Path, e.Err)
}

// Unwrap returns ErrPart and the cause.
func (e *PartError) Unwrap() []error { return []error{ErrPart, e.Err} }

// BlobError names the blob (by SHA-256) an error is about.
type BlobError struct {
	SHA256 string
	Err    error
}

func (e *BlobError) Error() string { return fmt.Sprintf("blob %s: %v", e.SHA256, e.Err) }

// Unwrap returns the cause.
func (e *BlobError) Unwrap() error { return e.Err }

// MemberError names the tar member (by name and position, 1-based) an error
// is about.
type MemberError struct {
	Name  string
	Index int
	Err   error
}

func (e *MemberError) Error() string {
	return fmt.Sprintf("member %d %q: %v", e.Index, e.Name, e.Err)
}

// Unwrap returns the cause.
func (e *MemberError) Unwrap() error { return e.Err }

// ManifestError names the manifest field an error is about, e.g.
// "tree[3].path".
type ManifestError struct {
	Field string
	Err   error
}

func (e *ManifestError) Error() string { return fmt.Sprintf("manifest %s: %v", e.Field, e.Err) }

// Unwrap returns the cause.
func (e *ManifestError) Unwrap() error { return e.Err }
