package repo

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// syncFS makes everything written to the filesystem holding dir durable:
// one syncfs(2).
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}

// sameFS reports whether a and b are on one filesystem (one device); false
// when either cannot be examined.
func sameFS(a, b string) bool {
	var sa, sb syscall.Stat_t
	if syscall.Stat(a, &sa) != nil || syscall.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}
