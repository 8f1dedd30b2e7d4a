package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
)

// gcFloor is the heap below which a run collects no garbage (heapFloor).
const gcFloor = 128 << 20

// heapFloor lets the run's heap grow to gcFloor before the first garbage
// collection, and from then on collects as Go does by default (GOGC=100).
// A no-op sync of 20,000 packages allocates about 100 MiB in a quarter of
// a second: with the default policy the collector ran four times during
// it (GODEBUG=gctrace=1 GOGC=100 mirror sync, which leaves the floor
// off), rescanning a live heap that only grew; with the floor, none. Runs that need more
// than gcFloor (a cold sync, a large set) pay one early collection and are
// then collected as before, so their peak is what it was (max of gcFloor
// and twice the live heap). GOGC or GOMEMLIMIT in the environment are the
// operator's choice and left alone.
func heapFloor() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(gcFloor)
	// The first collection (the heap reached gcFloor) runs the sentinel's
	// cleanup, which restores the default policy.
	type sentinel struct{ _ *int }
	runtime.AddCleanup(&sentinel{}, func(struct{}) {
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
	}, struct{}{})
}
