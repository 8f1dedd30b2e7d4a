package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mirror-tool/mirror/internal/atomicfile"
)

// Batched durability: Adopt fsyncs every blob and its folder, which bounds a
// sync of many small files by disk latency (two fsyncs per file). A batch
// instead renames blobs into place without an fsync (AdoptBatched) and makes
// all of them durable at once with one syncfs(2) of the store's filesystem
// (Sync).
//
// Until Sync returns, a crash can leave a blob of the batch visible under its
// name but incomplete. To keep the store's promise ("a blob that is present
// is complete and correct") across such a crash, the first AdoptBatched of a
// batch creates the marker file DIR/unsynced durably (fsync of the file and
// of DIR) before any blob is renamed, and Sync removes it. Recover, run
// before the store is used, finds a marker left by a crashed batch and
// re-hashes every blob whose inode changed since the marker was made (a
// blob is chmod-ed and renamed into place after the marker: its ctime is
// not older), removing those that do not hash to their name. So a torn blob
// is never served by the store: it is removed before anyone reads it, and the
// caller fetches it again.

// UnsyncedMarker is the marker file of a batch not yet synced.
const UnsyncedMarker = "unsynced"

// recoverSlack widens the window of blobs re-hashed by Recover, against a
// wall clock stepped back between the marker and the blobs.
const recoverSlack = 10 * time.Minute

// batch is the state of the current batch of a Store.
type batch struct {
	// inflight is held shared by each AdoptBatched from its marker check
	// to its rename, and exclusively by Sync: a rename can then never slip
	// in after Sync's syncfs but before the marker is removed (which would
	// leave an unsynced blob that no marker covers).
	inflight sync.RWMutex
	mu       sync.Mutex
	marked   bool            // the marker is durable on disk
	since    time.Time       // the marker's time (wall clock)
	shards   map[string]bool // shard folders known to exist
}

func (s *Store) batch() *batch { return &s.batched }

// mark makes the marker durable, once per batch.
func (s *Store) mark() error {
	b := s.batch()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.marked {
		return nil
	}
	p := filepath.Join(s.dir, UnsyncedMarker)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	// The marker's mtime is the start of the batch (Recover's window).
	now := s.clock()
	err = os.Chtimes(p, now, now)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = atomicfile.SyncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("store %s: batch marker: %w", s.dir, err)
	}
	b.marked, b.since = true, now
	return nil
}

// keepWindow moves the marker's time back, durably, when the wall clock
// has gone back since it was set (NTP correcting a clock that ran ahead, a
// virtual machine resumed), by more than half of recoverSlack: a blob
// renamed now gets an inode change time that Recover's window must still
// hold. It runs before each rename of a batch; a step landing between it
// and the rename (microseconds) is not covered.
func (s *Store) keepWindow() error {
	b := s.batch()
	b.mu.Lock()
	defer b.mu.Unlock()
	now := s.clock()
	if !now.Before(b.since.Add(-recoverSlack / 2)) {
		return nil
	}
	p := filepath.Join(s.dir, UnsyncedMarker)
	f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("store %s: batch marker: %w", s.dir, err)
	}
	err = os.Chtimes(p, now, now)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store %s: batch marker: %w", s.dir, err)
	}
	b.since = now
	return nil
}

// clock is the wall clock (without a monotonic reading: the window is in
// file times), or the test's.
func (s *Store) clock() time.Time {
	if s.now != nil {
		return s.now().Round(0)
	}
	return time.Now().Round(0)
}

// AdoptBatched moves the file at path, whose SHA-256 the caller computed as
// sum and whose size is size, into the store like Adopt, but without fsync:
// the blob is visible at once and durable after the next Sync. A blob that is
// already stored is kept (a durable copy is never replaced by an unsynced
// one) and path is removed. path must be on the store's filesystem.
func (s *Store) AdoptBatched(path string, sum string, size int64) error {
	dst, err := s.path(sum)
	if err != nil {
		return err
	}
	var fi fs.FileInfo
	if fi, err = os.Lstat(path); err != nil {
		return fmt.Errorf("store %s: adopt: %w", s.dir, err)
	}
	if !fi.Mode().IsRegular() {
		// Also refuses a symbolic link: Lstat does not follow it.
		return fmt.Errorf("store %s: adopt %s: not a regular file", s.dir, path)
	}
	if fi.Size() != size {
		return fmt.Errorf("store %s: adopt %s: %w", s.dir, path, &MismatchError{Want: sum, Size: fi.Size(), WantSize: size})
	}
	if _, err := os.Lstat(dst); err == nil {
		os.Remove(path)
		return nil
	}
	s.batch().inflight.RLock()
	defer s.batch().inflight.RUnlock()
	if err := s.mark(); err != nil {
		return err
	}
	if err := s.keepWindow(); err != nil {
		return err
	}
	b := s.batch()
	dir := filepath.Dir(dst)
	b.mu.Lock()
	known := b.shards[dir]
	b.mu.Unlock()
	if !known {
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
		b.mu.Lock()
		if b.shards == nil {
			b.shards = map[string]bool{}
		}
		b.shards[dir] = true
		b.mu.Unlock()
	}
	if err := os.Chmod(path, 0o444); err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	return nil
}

// PutBatched is Put with AdoptBatched's durability: the bytes read from r
// are checked against sum and, when size >= 0, against size while they are
// written (a *MismatchError and nothing stored on a mismatch), then renamed
// into place without an fsync; they are durable after the next Sync. When
// the blob is already stored, PutBatched returns nil without reading r.
func (s *Store) PutBatched(ctx context.Context, r io.Reader, sum string, size int64) error {
	if _, err := s.path(sum); err != nil {
		return err
	}
	t, err := s.writeChecked(ctx, r, sum, size)
	if t == nil || err != nil {
		return err
	}
	defer t.abort()
	f := t.f
	t.f = nil
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("store %s: write: %w", s.dir, err)
	}
	if err := s.AdoptBatched(f.Name(), sum, t.size); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// Pending reports whether blobs adopted by AdoptBatched await a Sync (the
// batch marker is on disk). It is a snapshot: a concurrent AdoptBatched may
// start a batch right after it returns.
func (s *Store) Pending() bool {
	b := s.batch()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.marked
}

// Sync makes every blob adopted by AdoptBatched durable: one syncfs(2) of the
// store's filesystem, then the batch's marker is removed. Without a pending
// batch it does nothing.
func (s *Store) Sync() error {
	b := s.batch()
	b.inflight.Lock()
	defer b.inflight.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.marked {
		return nil
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("store %s: sync: %w", s.dir, err)
	}
	err = unix.Syncfs(int(d.Fd()))
	d.Close()
	if err != nil {
		return fmt.Errorf("store %s: syncfs: %w", s.dir, err)
	}
	// Not synced: a marker that survives a crash only costs one Recover
	// pass over blobs that are in fact complete.
	if err := os.Remove(filepath.Join(s.dir, UnsyncedMarker)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	b.marked = false
	return nil
}

// Recover finishes a batch that a crash interrupted before its Sync: when the
// marker exists, every blob changed since the marker was made (by its inode
// change time, with a margin) is re-hashed and removed when it does not match
// its name, then the marker is removed. It returns the names of the removed
// blobs. Without a marker it only checks that the marker is absent.
func (s *Store) Recover(ctx context.Context) ([]string, error) {
	p := filepath.Join(s.dir, UnsyncedMarker)
	mfi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", s.dir, err)
	}
	since := mfi.ModTime().Add(-recoverSlack)
	var removed []string
	err = s.Walk(func(sum string, _ int64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(s.Path(sum), &st); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
		if time.Unix(st.Ctim.Unix()).Before(since) {
			return nil
		}
		verr := s.Verify(ctx, sum)
		if verr == nil || errors.Is(verr, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(verr, ErrMismatch) {
			return verr
		}
		if err := s.Remove(sum); err != nil {
			return err
		}
		removed = append(removed, sum)
		return nil
	})
	if err != nil {
		return removed, err
	}
	// The removals must be durable before the marker goes.
	if len(removed) > 0 {
		if err := s.syncShards(removed); err != nil {
			return removed, err
		}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return removed, fmt.Errorf("store %s: %w", s.dir, err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return removed, fmt.Errorf("store %s: %w", s.dir, err)
	}
	return removed, nil
}

func (s *Store) syncShards(sums []string) error {
	done := map[string]bool{}
	for _, sum := range sums {
		dir := filepath.Dir(s.Path(sum))
		if done[dir] {
			continue
		}
		done[dir] = true
		if err := atomicfile.SyncDir(dir); err != nil {
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
	}
	return nil
}
