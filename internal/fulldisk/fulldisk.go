// Package fulldisk gives tests a real file system that fills up: a tmpfs
// of a chosen size mounted for one test, and a filler that takes its free
// bytes (and inodes) at the moment the test chooses. Tests of what a full
// disk does to sync and import use it instead of injected ENOSPC, which
// misses what a real one does: a write that fits in part, a folder or link
// that cannot be made. Only tests import it.
package fulldisk

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Mount mounts a tmpfs of size bytes and at most inodes files (on tmpfs a
// hard link takes one too) on a new folder, unmounted when the test ends.
// The test is skipped when this process may not mount (not root, no
// CAP_SYS_ADMIN).
func Mount(t testing.TB, size int64, inodes int) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,nr_inodes=%d,mode=0755", size, inodes)); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("a real full disk needs a tmpfs mount, which this process may not make (%v): run as root or with CAP_SYS_ADMIN", err)
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s (a file left open on it?): %v", dir, err)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// Fill fills the file system of dir with files named filler-* in dir until
// only leave bytes are free and, with inodes, until no file can be created
// either. It returns what frees them again; calling it twice is harmless.
func Fill(t testing.TB, dir string, leave int64, inodes bool) (free func()) {
	t.Helper()
	var names []string
	free = func() {
		for _, n := range names {
			if err := os.Remove(n); err != nil {
				t.Errorf("free the disk: %v", err)
			}
		}
		names = nil
	}
	var sf unix.Statfs_t
	if err := unix.Statfs(dir, &sf); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "filler-")
	if err != nil {
		t.Fatalf("fill %s: %v", dir, err)
	}
	names = append(names, f.Name())
	todo := int64(sf.Bavail)*sf.Bsize - leave
	buf := make([]byte, 1<<20)
	for chunk := len(buf); chunk > 0 && todo > 0; {
		n, err := f.Write(buf[:min(int64(chunk), todo)])
		todo -= int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			chunk /= 2 // the last, partly used page takes less
		} else if err != nil {
			t.Fatalf("fill %s: %v", dir, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatalf("fill %s: %v", dir, err)
	}
	for inodes {
		f, err := os.CreateTemp(dir, "filler-")
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatalf("fill %s: %v", dir, err)
		}
		f.Close()
		names = append(names, f.Name())
	}
	return free
}
