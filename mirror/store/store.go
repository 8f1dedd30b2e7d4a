// Package store is mirror's content-addressed blob store: every blob is named
// by the lowercase hex SHA-256 of its bytes and lives at
// DIR/sha256/ab/abcdef... (the first two hex digits shard the folder).
//
// Check first, store second: a blob is written to a temporary file in
// DIR/tmp, hashed and sized while it is written, and becomes visible under
// its name only after both checks passed, through the same durable sequence
// as internal/atomicfile (fsync the file, rename, fsync the folder). A blob
// that is present is therefore complete and correct, unless someone changed
// the folder behind the store's back.
//
// Several goroutines and processes may use one store at once: Puts of the
// same blob race harmlessly, since both candidates hold the same bytes.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mirror-tool/mirror/internal/atomicfile"
)

// StaleTmpAge is how old a file in DIR/tmp must be before Open removes it as
// the leftover of a crashed writer.
const StaleTmpAge = 24 * time.Hour

var (
	// ErrMismatch: the bytes offered do not have the announced SHA-256 or
	// size. Nothing was stored.
	ErrMismatch = errors.New("content does not match its hash or size")
	// ErrTooLarge: the bytes offered exceed the allowed size. Nothing was
	// stored.
	ErrTooLarge = errors.New("content exceeds the size limit")
	// ErrBadSum: the name is not 64 lowercase hex digits.
	ErrBadSum = errors.New("malformed sha256 (want 64 lowercase hex digits)")
	// ErrNotExist: no blob with that hash is stored. It matches
	// fs.ErrNotExist too.
	ErrNotExist = fmt.Errorf("blob not in store: %w", fs.ErrNotExist)
)

// MismatchError reports content that failed the hash or size check. It
// matches ErrMismatch.
type MismatchError struct {
	Want string // the announced SHA-256
	Got  string // the SHA-256 of the bytes received ("" when the size check failed first)
	Size int64  // the number of bytes received
	// WantSize is the announced size, or -1 when it was not known.
	WantSize int64
}

func (e *MismatchError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("content for sha256 %s is %d bytes, want %d: the source changed or was corrupted; fetch it again", e.Want, e.Size, e.WantSize)
	}
	return fmt.Sprintf("content has sha256 %s (%d bytes), want %s: the source changed or was corrupted; fetch it again", e.Got, e.Size, e.Want)
}

func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Store is a content-addressed store rooted at a folder. Its methods are safe
// for concurrent use.
type Store struct {
	dir  string
	blob string // dir/sha256
	tmp  string // dir/tmp

	// wrap, when set (tests only), wraps the writer of temporary files so
	// that write failures such as ENOSPC can be injected.
	wrap func(io.Writer) io.Writer
	// now, when set (tests only), is the wall clock of batch markers.
	now func() time.Time

	batched batch // AdoptBatched and Sync (batch.go)
}

// Open opens the store in dir, creating its layout when missing, and removes
// temporary files older than StaleTmpAge left by crashed writers.
func Open(dir string) (*Store, error) {
	s := &Store{
		dir:  dir,
		blob: filepath.Join(dir, "sha256"),
		tmp:  filepath.Join(dir, "tmp"),
	}
	for _, d := range []string{dir, s.blob, s.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
	}
	s.cleanTmp(time.Now().Add(-StaleTmpAge))
	return s, nil
}

// Dir returns the folder the store lives in.
func (s *Store) Dir() string { return s.dir }

// TempDir returns the store's folder for temporary files. A file created
// there is on the store's filesystem, so Adopt can rename it into place.
func (s *Store) TempDir() string { return s.tmp }

func (s *Store) cleanTmp(before time.Time) {
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || fi.IsDir() || !fi.ModTime().Before(before) {
			continue
		}
		os.Remove(filepath.Join(s.tmp, e.Name()))
	}
}

// ValidSum reports whether sum is a well-formed SHA-256 name: 64 lowercase
// hex digits.
func ValidSum(sum string) bool {
	if len(sum) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(sum); i++ {
		c := sum[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Path returns where the blob named sum lives (whether or not it is stored),
// or "" when sum is malformed. It never panics.
func (s *Store) Path(sum string) string {
	if !ValidSum(sum) {
		return ""
	}
	return filepath.Join(s.blob, sum[:2], sum)
}

func (s *Store) path(sum string) (string, error) {
	p := s.Path(sum)
	if p == "" {
		return "", fmt.Errorf("store %s: %q: %w", s.dir, sum, ErrBadSum)
	}
	return p, nil
}

// Has reports whether the blob named sum is stored.
func (s *Store) Has(sum string) (bool, error) {
	p, err := s.path(sum)
	if err != nil {
		return false, err
	}
	_, err = os.Lstat(p)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("store %s: %w", s.dir, err)
}

// Put stores the bytes read from r under sum, checking while it writes that
// they hash to sum and, when size >= 0, that there are exactly size of them.
// On a mismatch it returns a *MismatchError (matching ErrMismatch) and stores
// nothing. When the blob is already stored, Put returns nil without reading r.
func (s *Store) Put(ctx context.Context, r io.Reader, sum string, size int64) error {
	dst, err := s.path(sum)
	if err != nil {
		return err
	}
	t, err := s.writeChecked(ctx, r, sum, size)
	if t == nil || err != nil {
		return err
	}
	defer t.abort()
	return s.commit(t, dst)
}

// writeChecked writes the bytes read from r to a temporary file, checking
// that they hash to sum and, when size >= 0, that there are exactly size of
// them (a *MismatchError and nothing kept otherwise). It returns nil and no
// error when the blob is stored already; the caller aborts or commits the
// file it returns.
func (s *Store) writeChecked(ctx context.Context, r io.Reader, sum string, size int64) (*tmpFile, error) {
	if ok, err := s.Has(sum); err != nil || ok {
		return nil, err
	}
	limit := int64(-1)
	if size >= 0 {
		limit = size
	}
	t, err := s.write(ctx, r, limit)
	if err != nil {
		var tl *tooLarge
		if errors.As(err, &tl) {
			return nil, &MismatchError{Want: sum, Size: tl.n, WantSize: size}
		}
		return nil, err
	}
	if size >= 0 && t.size != size {
		t.abort()
		return nil, &MismatchError{Want: sum, Size: t.size, WantSize: size}
	}
	if t.sum != sum {
		t.abort()
		return nil, &MismatchError{Want: sum, Got: t.sum, Size: t.size, WantSize: size}
	}
	return t, nil
}

// Add stores the bytes read from r, which may be at most maxSize long
// (ErrTooLarge otherwise, and nothing is stored), and returns their SHA-256
// and size.
func (s *Store) Add(ctx context.Context, r io.Reader, maxSize int64) (sum string, size int64, err error) {
	if maxSize < 0 {
		return "", 0, fmt.Errorf("store %s: add: negative size limit %d", s.dir, maxSize)
	}
	t, err := s.write(ctx, r, maxSize)
	if err != nil {
		var tl *tooLarge
		if errors.As(err, &tl) {
			return "", 0, fmt.Errorf("store %s: more than %d bytes: %w", s.dir, maxSize, ErrTooLarge)
		}
		return "", 0, err
	}
	defer t.abort()
	dst, _ := s.path(t.sum)
	if err := s.commit(t, dst); err != nil {
		return "", 0, err
	}
	return t.sum, t.size, nil
}

// Adopt moves the file at path, whose SHA-256 the caller computed as sum, into
// the store. path must be on the store's filesystem (TempDir is). Adopt
// re-checks the size (a cheap guard against a file that changed after it was
// hashed) and fsyncs the file before renaming it into place; it does not
// re-read the content. On success path no longer exists. When the blob is
// already stored, path is removed and Adopt returns nil.
func (s *Store) Adopt(path string, sum string, size int64) error {
	dst, err := s.path(sum)
	if err != nil {
		return err
	}
	// O_NOFOLLOW: a symbolic link is refused, not moved into the store.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("store %s: adopt: %w", s.dir, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("store %s: adopt %s: %w", s.dir, path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("store %s: adopt %s: not a regular file", s.dir, path)
	}
	if fi.Size() != size {
		f.Close()
		return fmt.Errorf("store %s: adopt %s: %w", s.dir, path, &MismatchError{Want: sum, Size: fi.Size(), WantSize: size})
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store %s: adopt %s: %w", s.dir, path, err)
	}
	if err := s.place(path, dst); err != nil {
		return err
	}
	return nil
}

// ReadAll returns the blob named sum, at most max bytes of it: a larger
// blob is an error matching ErrTooLarge, and nothing is returned. It does
// not check the content against sum (Verify does).
func (s *Store) ReadAll(sum string, max int64) ([]byte, error) {
	f, err := s.Open(sum)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("store %s: read %s: %w", s.dir, sum, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("store %s: blob %s is larger than %d bytes: %w", s.dir, sum, max, ErrTooLarge)
	}
	return data, nil
}

// Open opens the blob named sum for reading. A missing blob gives an error
// matching ErrNotExist (and fs.ErrNotExist).
func (s *Store) Open(sum string) (*os.File, error) {
	p, err := s.path(sum)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store %s: %s: %w", s.dir, sum, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", s.dir, err)
	}
	return f, nil
}

// Verify re-reads the blob named sum and checks that it still hashes to its
// name, for an audit of a store that may have been damaged on disk. A damaged
// blob gives a *MismatchError (matching ErrMismatch) and is left in place for
// the caller to Remove.
func (s *Store) Verify(ctx context.Context, sum string) error {
	f, err := s.Open(sum)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, rerr := f.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("store %s: %w", s.dir, rerr)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("store %s: blob damaged on disk: %w", s.dir, &MismatchError{Want: sum, Got: got, Size: n, WantSize: -1})
	}
	return nil
}

// Remove deletes the blob named sum. Removing a missing blob is not an error.
func (s *Store) Remove(sum string) error {
	p, err := s.path(sum)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	return nil
}

// Walk calls fn for every stored blob, in lexical order of the names. Files
// that are not well-formed blobs (wrong name, wrong shard, not regular) are
// skipped. An error from fn stops the walk and is returned.
func (s *Store) Walk(fn func(sum string, size int64) error) error {
	shards, err := os.ReadDir(s.blob)
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	for _, sh := range shards {
		if !sh.IsDir() || len(sh.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(s.blob, sh.Name()))
		if err != nil {
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
		for _, e := range ents {
			name := e.Name()
			if !ValidSum(name) || !strings.HasPrefix(name, sh.Name()) || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			if err != nil {
				return fmt.Errorf("store %s: %w", s.dir, err)
			}
			if err := fn(name, fi.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

// tmpFile is a written, hashed temporary file not yet in the store.
type tmpFile struct {
	f    *os.File
	sum  string
	size int64
}

func (t *tmpFile) abort() {
	if t.f != nil {
		t.f.Close()
		os.Remove(t.f.Name())
		t.f = nil
	}
}

type tooLarge struct{ n int64 }

func (e *tooLarge) Error() string { return fmt.Sprintf("more than %d bytes", e.n) }

// copyBuf is the size of the buffer used to copy into temporary files.
const copyBuf = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

// write copies r into a new temporary file, hashing it, reading at most
// limit+1 bytes when limit >= 0 (a *tooLarge error when there are more). On
// error nothing is left behind.
func (s *Store) write(ctx context.Context, r io.Reader, limit int64) (*tmpFile, error) {
	f, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", s.dir, err)
	}
	t := &tmpFile{f: f}
	ok := false
	defer func() {
		if !ok {
			t.abort()
		}
	}()
	h := sha256.New()
	var w io.Writer = f
	if s.wrap != nil {
		w = s.wrap(w)
	}
	w = io.MultiWriter(w, h)
	if limit >= 0 {
		r = io.LimitReader(r, limit+1)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if limit >= 0 && n+int64(m) > limit {
				return nil, &tooLarge{n: n + int64(m)}
			}
			if _, werr := w.Write(buf[:m]); werr != nil {
				return nil, fmt.Errorf("store %s: write: %w", s.dir, werr)
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("store %s: read: %w", s.dir, rerr)
		}
	}
	t.sum = hex.EncodeToString(h.Sum(nil))
	t.size = n
	ok = true
	return t, nil
}

// commit makes the checked temporary file t visible as dst: fsync, close,
// rename, fsync the folder (the atomicfile sequence).
func (s *Store) commit(t *tmpFile, dst string) error {
	f := t.f
	t.f = nil
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("store %s: write: %w", s.dir, err)
	}
	if err := s.place(f.Name(), dst); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// place renames the synced file src to dst and syncs dst's folder (and the
// parent when the shard folder is new). If dst appears meanwhile (a
// concurrent Put of the same blob), the rename replaces it with identical
// bytes, which is harmless. On error src is left where it was.
func (s *Store) place(src, dst string) error {
	dir := filepath.Dir(dst)
	if err := os.Mkdir(dir, 0o755); err == nil {
		if err := atomicfile.SyncDir(s.blob); err != nil {
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	if err := os.Chmod(src, 0o444); err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	return nil
}
