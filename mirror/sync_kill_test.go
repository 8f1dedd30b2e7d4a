package mirror

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/state"
)

// TestHelperSyncChild is not a test: it is the `mirror sync` process that
// TestSyncKilled starts and kills. It does nothing unless
// MIRROR_SYNC_CHILD_CONFIG is set. With MIRROR_SYNC_KILL_AT=POINT:N it
// SIGKILLs itself the N-th time the run passes POINT.
func TestHelperSyncChild(t *testing.T) {
	cfgPath := os.Getenv("MIRROR_SYNC_CHILD_CONFIG")
	if cfgPath == "" {
		return
	}
	if at := os.Getenv("MIRROR_SYNC_KILL_AT"); at != "" {
		point, nth, _ := strings.Cut(at, ":")
		n, _ := strconv.Atoi(nth)
		seen := 0
		syncHook = func(p string) {
			if p == point {
				if seen++; seen == n {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
					time.Sleep(time.Minute)
				}
			}
		}
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Sync(context.Background(), cfg, SyncOptions{Fetch: testFetchOptions()}); err != nil {
		t.Fatal(err)
	}
}

// TestSyncKilled kills a sync process at several points (after resolving,
// after the first and third file entered the cache, mid-download, after
// the bundle was written but before the state, after the state) and checks
// that the next run completes, that the sequence has no gap, and that every
// recorded bundle is complete and verifies.
func TestSyncKilled(t *testing.T) {
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.put("b/base.tar.gz", "base", "rel-b")
	stateDir := filepath.Join(e.dir, "state")

	points := []struct {
		at    string
		saved bool // the state was saved before the kill
	}{
		{"resolved:1", false},
		{"adopted:1", false},
		{"adopted:3", false},
		{"time:150ms", false},
		{"bundle-written:1", false},
		{"state-saved:1", true},
	}
	for i, p := range points {
		// Something new for every round: four new files.
		for j := range 4 {
			e.put("a/r"+strconv.Itoa(i)+"-"+strconv.Itoa(j)+".tar.gz", strings.Repeat("round "+strconv.Itoa(i)+" file "+strconv.Itoa(j)+" ", 2000), "rel-a")
		}
		before, err := state.Load(stateDir)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSyncChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MIRROR_SYNC_CHILD_CONFIG="+e.cfgPath)
		if d, ok := strings.CutPrefix(p.at, "time:"); ok {
			// A slow upstream, killed from outside mid-download.
			e.faultN("/tools/a/r"+strconv.Itoa(i)+"-2.tar.gz", 1, func(w http.ResponseWriter, body []byte) {
				for k := 0; k < len(body); k += 1000 {
					if _, err := w.Write(body[k:min(k+1000, len(body))]); err != nil {
						return
					}
					w.(http.Flusher).Flush()
					time.Sleep(20 * time.Millisecond)
				}
			})
			dur, _ := time.ParseDuration(d)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(dur)
			cmd.Process.Signal(syscall.SIGKILL)
			err = cmd.Wait()
		} else {
			cmd.Env = append(cmd.Env, "MIRROR_SYNC_KILL_AT="+p.at)
			var out []byte
			out, err = cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("%s: the child was not killed:\n%s", p.at, out)
			}
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s: child ended with %v, want SIGKILL", p.at, err)
		}
		after, err := state.Load(stateDir)
		if err != nil {
			t.Fatalf("%s: state after the kill: %v", p.at, err)
		}
		want := before.Sequence
		if p.saved {
			want++
		}
		if after.Sequence != want {
			t.Fatalf("%s: state sequence %d after the kill, want %d", p.at, after.Sequence, want)
		}
		// The next run completes.
		e.fault("/tools/a/r"+strconv.Itoa(i)+"-2.tar.gz", nil)
		res := e.mustSync(SyncOptions{})
		if p.saved {
			if !res.NothingNew {
				t.Fatalf("%s: the run after a completed-then-killed run = %+v", p.at, res.Bundle)
			}
			continue
		}
		if res.Bundle == nil || res.Bundle.Sequence != before.Sequence+1 {
			t.Fatalf("%s: next run bundle %+v, want sequence %d", p.at, res.Bundle, before.Sequence+1)
		}
	}

	// Gap-free: bundles 1..N, each complete and verified; the one bundle
	// written but never recorded (killed before the state) was set aside.
	st, _ := state.Load(stateDir)
	ents, _ := os.ReadDir(filepath.Join(e.dir, "bundles"))
	var names []string
	aside := 0
	for _, e := range ents {
		if strings.Contains(e.Name(), ".unrecorded-") {
			aside++
			continue
		}
		names = append(names, e.Name())
	}
	if len(names) != int(2*st.Sequence) || aside != 2 {
		t.Fatalf("bundles folder holds %v (+%d set aside) for %d sequences", names, aside, st.Sequence)
	}
	shipped := map[string]bool{}
	for s := uint64(1); s <= st.Sequence; s++ {
		p := filepath.Join(e.dir, "bundles", BundleName(s)+".tar.zst")
		m, blobs := e.openBundle(&BundleResult{Path: p, Paths: []string{p, p + ".minisig"}})
		if m.Sequence != s {
			t.Fatalf("bundle %s says sequence %d", p, m.Sequence)
		}
		for sum := range blobs {
			shipped[sum] = true
		}
		// Every blob the tree needs was shipped by this or an earlier bundle.
		for path, sum := range treeOf(m) {
			if !shipped[sum] {
				t.Errorf("bundle %d: %s needs blob %s that no bundle up to it carried", s, path, sum)
			}
		}
	}
}
