//go:build !linux

package repo

import "errors"

// syncFS: no syncfs(2) here; the caller syncs folder by folder.
func syncFS(string) error { return errors.ErrUnsupported }
