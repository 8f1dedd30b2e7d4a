//go:build !mirrortesthooks

package repo

// loadHooks reads nothing in a shipped binary: the test hooks are set only
// by this package's tests, or from the environment in a binary built with
// -tags mirrortesthooks (hooks_env.go).
func loadHooks() {}
