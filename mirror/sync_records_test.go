package mirror

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/state"
)

// TestRecordsIsAMap: records holds what a map would after the same puts
// (the last value put under a key), missing names the base's keys not put,
// and result calls it unchanged exactly when that map equals the base: checked on random sequences of puts over small
// key and value sets, so that repeats, keys missing from the base, values
// changed and changed back all come up.
func TestRecordsIsAMap(t *testing.T) {
	eq := func(a, b int) bool { return a == b }
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "b", "c", "d", "e"}
	for round := range 20000 {
		base := map[string]int{}
		if round%7 == 0 {
			base = nil
		}
		for _, k := range keys {
			if rng.IntN(3) > 0 && base != nil {
				base[k] = rng.IntN(2)
			}
		}
		s := newRecords(base, eq)
		want := map[string]int{}
		for range rng.IntN(8) {
			k, v := keys[rng.IntN(len(keys))], rng.IntN(2)
			if rng.IntN(4) == 0 {
				if got := s.has(k); got != (func() bool { _, ok := want[k]; return ok })() {
					t.Fatalf("round %d: has(%s) = %v, want %v", round, k, got, !got)
				}
			}
			if rng.IntN(5) == 0 {
				s.grow(rng.IntN(10)) // room only: never a change
			}
			s.put(k, v)
			want[k] = v
		}
		if rng.IntN(2) == 0 {
			// missing names exactly the base's keys not put, with the
			// base's values; some of them are put from inside it.
			var wantMissing, gotMissing []string
			for k := range base {
				if _, ok := want[k]; !ok {
					wantMissing = append(wantMissing, k)
				}
			}
			s.missing(func(k string, v int) {
				gotMissing = append(gotMissing, k)
				if v != base[k] {
					t.Fatalf("round %d: missing gave %s=%d, base has %d", round, k, v, base[k])
				}
				if rng.IntN(2) == 0 {
					s.put(k, v)
					want[k] = v
				}
			})
			slices.Sort(wantMissing)
			slices.Sort(gotMissing)
			if !slices.Equal(gotMissing, wantMissing) {
				t.Fatalf("round %d: base %v, put %v: missing %v, want %v", round, base, want, gotMissing, wantMissing)
			}
		}
		got, unchanged := s.result()
		if !maps.Equal(got, want) {
			t.Fatalf("round %d: base %v: got %v, want %v", round, base, got, want)
		}
		if same := maps.Equal(want, base); unchanged != same {
			t.Fatalf("round %d: base %v, result %v: unchanged %v, want %v", round, base, want, unchanged, same)
		}
	}
}

// TestCarryMarks: the verdicts a run did not see stay for markRetention
// after they were accepted, for sources still configured; those a run put
// keep the run's value.
func TestCarryMarks(t *testing.T) {
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	base := map[string]state.Verified{
		"tools:a":                 {File: "a", At: now.Add(-24 * time.Hour)},
		"tools:old":               {File: "old", At: now.Add(-markRetention - time.Hour)},
		"gone:b":                  {File: "b", At: now.Add(-time.Hour)},
		"tools:c":                 {File: "c", At: now.Add(-time.Hour)},
		"tools:l" + listKeySuffix: {File: "l", At: now.Add(-time.Hour)},
	}
	r := &run{cfg: &Config{Sources: []SourceConfig{{Name: "tools"}}}, now: now, verified: newRecords(base, sameVerdict)}
	r.verified.put("tools:c", state.Verified{File: "c2", At: now})
	r.carryMarks()
	got, _ := r.verified.result()
	want := map[string]state.Verified{
		"tools:a":                 base["tools:a"],
		"tools:c":                 {File: "c2", At: now},
		"tools:l" + listKeySuffix: base["tools:l"+listKeySuffix],
	}
	if !maps.EqualFunc(got, want, sameVerdict) {
		t.Fatalf("carried %v, want %v", got, want)
	}
}

// TestSyncSavesOnlyChangedRecords: a no-op run whose records are the
// state's leaves the state file alone; one that re-made a verdict (an
// OpenPGP-signed checksum list is verified again every run) saves a state
// that still holds every record and verdict, with the new one.
func TestSyncSavesOnlyChangedRecords(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/x.tar.gz", "x", "rel-a")
	e.put("b/y.tar.gz", "y", "rel-b")
	full, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	toolsOnly := full[:bytes.Index(full, []byte("[[source]]\nname = \"rel\""))]
	if err := os.WriteFile(e.cfgPath, toolsOnly, 0o644); err != nil {
		t.Fatal(err)
	}
	stateFile := filepath.Join(e.dir, "state", state.FileName)
	e.mustSync(SyncOptions{})
	before, err := os.Stat(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	if res := e.mustSync(SyncOptions{}); !res.NothingNew {
		t.Fatalf("second run: %+v", res)
	}
	after, err := os.Stat(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("a run with nothing new to record wrote the state")
	}

	// The checksum list source: its verdict is made again at every run.
	if err := os.WriteFile(e.cfgPath, full, 0o644); err != nil {
		t.Fatal(err)
	}
	e.putRel("r.tar.gz", "r")
	e.sums("r.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	first := time.Now().Add(time.Minute).Truncate(time.Second)
	e.mustSync(SyncOptions{Now: func() time.Time { return first }})
	st1, err := state.Load(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	later := first.Add(time.Hour)
	if res := e.mustSync(SyncOptions{Now: func() time.Time { return later }}); !res.NothingNew {
		t.Fatalf("fourth run: %+v", res)
	}
	st2, err := state.Load(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(st1.Upstreams, st2.Upstreams) {
		t.Fatalf("upstream records changed:\n%v\n%v", st1.Upstreams, st2.Upstreams)
	}
	remade := 0
	for k, v1 := range st1.Verified {
		v2, ok := st2.Verified[k]
		switch {
		case !ok:
			t.Fatalf("verdict %q was dropped", k)
		case sameVerdict(v1, v2):
		case strings.HasSuffix(k, listKeySuffix) && v2.At.Equal(later):
			remade++
		default:
			t.Fatalf("verdict %q changed: %+v -> %+v", k, v1, v2)
		}
	}
	if remade != 1 || len(st2.Verified) != len(st1.Verified) || len(st1.Verified) < 3 {
		t.Fatalf("%d verdicts remade of %d (%d after); want the list's, of at least 3", remade, len(st1.Verified), len(st2.Verified))
	}
}
