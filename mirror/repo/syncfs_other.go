//go:build !linux

package repo

import "errors"

// syncFS: no syncfs(2) here; the caller syncs folder by folder.
func syncFS(string) error { return errors.ErrUnsupported }

// sameFS: unknown here, so never assumed.
func sameFS(a, b string) bool { return false }
