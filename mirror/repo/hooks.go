package repo

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// Test hooks. A binary built with -tags mirrortesthooks (the crash and
// full-disk tests of cmd/mirror build one) reads them from the environment
// once (hooks_env.go); a shipped binary reads nothing (hooks_noenv.go), so
// no environment variable kills it or fails its writes. This package's own
// tests set them directly. Unset, they cost one comparison.
//
//	MIRROR_TEST_KILL_AT=step[:n]   SIGKILL this process at the n-th (default
//	                               first) Checkpoint(step)
//	MIRROR_TEST_ENOSPC_AFTER=n     writers wrapped by WrapWriter fail with
//	                               ENOSPC once n bytes went through them all
var (
	hookOnce    sync.Once
	killStep    string
	killNth     int64
	killSeen    atomic.Int64
	enospcAfter int64 = -1
	written     atomic.Int64
)

// onCheckpoint, set by this package's tests only, observes every step.
var onCheckpoint func(step string)

// Checkpoint marks a named step of an import, for the crash test.
func Checkpoint(step string) {
	hookOnce.Do(loadHooks)
	if onCheckpoint != nil {
		onCheckpoint(step)
	}
	if killStep == "" || step != killStep {
		return
	}
	if killSeen.Add(1) == killNth {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// WrapWriter returns w, or, under MIRROR_TEST_ENOSPC_AFTER, a writer that
// fails with ENOSPC like a full disk once the byte budget is spent.
func WrapWriter(w io.Writer) io.Writer {
	hookOnce.Do(loadHooks)
	if enospcAfter < 0 {
		return w
	}
	return &fullDisk{w: w}
}

type fullDisk struct{ w io.Writer }

func (f *fullDisk) Write(p []byte) (int, error) {
	left := enospcAfter - written.Load()
	if left <= 0 {
		return 0, &os.PathError{Op: "write", Path: "(injected)", Err: syscall.ENOSPC}
	}
	if int64(len(p)) > left {
		n, err := f.w.Write(p[:left])
		written.Add(int64(n))
		if err == nil {
			err = &os.PathError{Op: "write", Path: "(injected)", Err: syscall.ENOSPC}
		}
		return n, err
	}
	n, err := f.w.Write(p)
	written.Add(int64(n))
	return n, err
}
