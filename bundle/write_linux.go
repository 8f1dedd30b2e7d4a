//go:build linux

package bundle

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing bytes [off, off+n) of f to
// the disk now, without waiting for them (sync_file_range with
// SYNC_FILE_RANGE_WRITE only). It is a hint that lets the disk work while
// the writer is still hashing and compressing, so that the fsync at commit
// has little left to wait for; durability still rests on that fsync, which
// reports any write error, so an error here is ignored.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
