//go:build !linux

package bundle

import "os"

// startWriteback is a no-op where sync_file_range does not exist: the
// fsync at commit writes everything.
func startWriteback(f *os.File, off, n int64) {}
