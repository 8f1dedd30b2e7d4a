// Package lock holds an exclusive lock on a state folder, so that two
// `mirror sync` runs (a slow cron run and the next one) never work on the same
// state at once.
//
// The lock is flock(2) on DIR/lock, taken without waiting. The kernel drops
// it when the holder exits, however it exits, so there is no stale lock to
// clean up, and the lock file must never be removed by hand (a second process
// would then lock a different file). The holder writes its pid and start time
// into the file so that a contender can say who holds it.
package lock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FileName is the name of the lock file inside the locked folder.
const FileName = "lock"

// maxInfo bounds how much of the lock file a contender reads.
const maxInfo = 512

// ErrLocked: another process holds the lock.
var ErrLocked = errors.New("state folder is locked by another process")

// LockedError says who holds the lock. It matches ErrLocked.
type LockedError struct {
	Dir     string
	PID     int       // 0 when the holder has not written it (yet)
	Started time.Time // zero when unknown
}

func (e *LockedError) Error() string {
	who := "another mirror process"
	switch {
	case e.PID != 0 && !e.Started.IsZero():
		who = fmt.Sprintf("another mirror process (pid %d, started %s)", e.PID, e.Started.Local().Format("2006-01-02 15:04:05"))
	case e.PID != 0:
		who = fmt.Sprintf("another mirror process (pid %d)", e.PID)
	}
	return fmt.Sprintf("%s holds the lock on %s; wait for it to finish, and do not remove %s: the lock is released when that process exits",
		who, e.Dir, filepath.Join(e.Dir, FileName))
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is a held lock. Release it when done; exiting releases it too.
type Lock struct {
	f *os.File
}

// Acquire takes the lock on dir (which must exist) without waiting. When
// another process holds it, the error is a *LockedError (matching ErrLocked).
func Acquire(dir string) (*Lock, error) {
	p := filepath.Join(dir, FileName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.EWOULDBLOCK {
		le := &LockedError{Dir: dir}
		le.PID, le.Started = readInfo(f)
		f.Close()
		return nil, le
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: flock: %w", dir, err)
	}
	info := fmt.Sprintf("%d %s\n", os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(info), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: write holder: %w", dir, err)
	}
	return &Lock{f: f}, nil
}

// readInfo parses "PID RFC3339" from the lock file; unknown parts are zero.
func readInfo(f *os.File) (pid int, started time.Time) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, maxInfo))
	if err != nil {
		return 0, time.Time{}
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0, time.Time{}
	}
	if n, err := strconv.Atoi(fields[0]); err == nil && n > 0 {
		pid = n
	}
	if t, err := time.Parse(time.RFC3339, fields[1]); err == nil {
		started = t
	}
	return pid, started
}

// Release drops the lock. The lock file stays (see the package comment).
// Calling Release twice is harmless.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	err := unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
