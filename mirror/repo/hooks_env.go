//go:build mirrortesthooks

package repo

import (
	"os"
	"strconv"
	"strings"
)

func loadHooks() {
	if v := os.Getenv("MIRROR_TEST_KILL_AT"); v != "" {
		step, n, _ := strings.Cut(v, ":")
		killStep, killNth = step, 1
		if k, err := strconv.ParseInt(n, 10, 64); err == nil && k > 0 {
			killNth = k
		}
	}
	if v := os.Getenv("MIRROR_TEST_ENOSPC_AFTER"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			enospcAfter = n
		}
	}
}
