package store

import (
	"context"
	"testing"
	"time"
)

// TestRecoverAfterClockStepBack: the wall clock steps back by an hour in
// the middle of a batch (NTP correcting a clock that ran ahead, a virtual
// machine resumed), after the batch's marker was made and before a blob is
// renamed into place; then the machine crashes before Sync and that blob's
// data never reached the disk. The blob's inode change time lies an hour
// before the marker's first time, outside Recover's window and its slack;
// Recover must still remove the torn blob.
//
// The kernel clock is not stepped here (the machine is shared): the
// store's clock runs an hour ahead when the marker is made, and is right
// again (an hour back) when the second blob is adopted.
func TestRecoverAfterClockStepBack(t *testing.T) {
	s := newStore(t)
	s.now = func() time.Time { return time.Now().Add(time.Hour) }
	first, torn := "adopted before the step", "adopted after the step, cut by the crash"
	if err := s.AdoptBatched(tmpWith(t, s, first), sumOf([]byte(first)), int64(len(first))); err != nil {
		t.Fatal(err)
	}
	s.now = nil
	if err := s.AdoptBatched(tmpWith(t, s, torn), sumOf([]byte(torn)), int64(len(torn))); err != nil {
		t.Fatal(err)
	}
	s2, removed := crashAndRecover(t, s, torn)
	if ok, _ := s2.Has(sumOf([]byte(torn))); ok || len(removed) != 1 {
		t.Fatalf("Recover removed %v; the torn blob is still in the store (read back: %v)", removed, s2.Verify(context.Background(), sumOf([]byte(torn))))
	}
}
