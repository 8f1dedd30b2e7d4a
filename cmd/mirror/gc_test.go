package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// gcPolicy reads the collector's settings without changing them.
func gcPolicy() (percent int, limit int64) {
	percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	return percent, debug.SetMemoryLimit(-1)
}

func TestHeapFloor(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	heapFloor()
	if p, l := gcPolicy(); p != -1 || l != gcFloor {
		t.Fatalf("after heapFloor: GOGC %d, limit %d; want off and %d", p, l, gcFloor)
	}
	// The first collection brings the default policy back.
	runtime.GC()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, l := gcPolicy()
		if p == 100 && l == math.MaxInt64 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a collection: GOGC %d, limit %d; want 100 and none", p, l)
		}
		time.Sleep(time.Millisecond)
	}

	// The operator's GOGC or GOMEMLIMIT is left alone.
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, "50")
			heapFloor()
			if p, l := gcPolicy(); p != 100 || l != math.MaxInt64 {
				t.Fatalf("with %s set: GOGC %d, limit %d; want them unchanged", env, p, l)
			}
		})
	}
}
