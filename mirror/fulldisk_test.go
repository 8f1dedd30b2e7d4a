package mirror

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mirror-tool/mirror/internal/fulldisk"
	"github.com/mirror-tool/mirror/mirror/state"
)

// leftovers lists the files under dir that no finished run should leave:
// temporary files, partial downloads, bundles set aside.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.Contains(d.Name(), ".tmp-") || strings.Contains(d.Name(), ".unrecorded-") ||
			strings.HasPrefix(rel, filepath.Join("state", PartialDir)+"/") || strings.HasPrefix(rel, filepath.Join("state", CacheDir, "tmp")+"/") {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSyncFullDiskTmpfs runs Sync with its state folder and its bundles on
// a real tmpfs that fills up at three points of a run: while the new files
// download into the cache, while the bundle is written, and after the
// bundle is written, while the state is saved. Each failed run must fail
// with ENOSPC (ErrSync: the command's exit 1 and its hint), leave the state
// as it was and no file of the next bundle; once the disk has room again
// the next run makes the next sequence, which verifies and carries the new
// files, and the runs leave nothing behind.
func TestSyncFullDiskTmpfs(t *testing.T) {
	e := newSyncEnv(t)
	disk := fulldisk.Mount(t, 16<<20, 4096)
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(`dir = "bundles"`), []byte(`dir = "`+filepath.Join(disk, "bundles")+`"`), 1)
	cfg = bytes.Replace(cfg, []byte(`state = "state"`), []byte(`state = "`+filepath.Join(disk, "state")+`"`), 1)
	if err := os.WriteFile(e.cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	random := func() string { // incompressible: the bundle is as large as its files
		b := make([]byte, 300<<10)
		rand.Read(b)
		return string(b)
	}
	e.put("a/base.tar.gz", random(), "rel-a")
	if res := e.mustSync(SyncOptions{}); res.Bundle == nil || res.Bundle.Sequence != 1 {
		t.Fatalf("first run = %+v", res)
	}
	stateDir, bundles := filepath.Join(disk, "state"), filepath.Join(disk, "bundles")

	for i, c := range []struct {
		name   string
		point  string // the hook at which the disk is filled ("": before the run)
		nth    int    // ... the nth time it is passed
		leave  int64  // bytes left free
		inodes bool   // no file can be created either
	}{
		{"full before the run", "", 0, 0, true},
		{"while downloading", "resolved", 1, 64 << 10, false},
		{"while writing the bundle", "adopted", 2, 128 << 10, false}, // both new files are in the cache
		{"while saving the state", "bundle-written", 1, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			newFiles := []string{fmt.Sprintf("a/r%d-1.tar.gz", i), fmt.Sprintf("b/r%d-2.tar.gz", i)}
			e.put(newFiles[0], random(), "rel-a")
			e.put(newFiles[1], random(), "rel-b")
			before, err := state.Load(stateDir)
			if err != nil {
				t.Fatal(err)
			}
			stateBytes, err := os.ReadFile(filepath.Join(stateDir, state.FileName))
			if err != nil {
				t.Fatal(err)
			}
			bundlesBefore, err := os.ReadDir(bundles)
			if err != nil {
				t.Fatal(err)
			}

			var mu sync.Mutex
			seen := 0
			free := func() {}
			if c.point == "" {
				free = fulldisk.Fill(t, disk, c.leave, c.inodes)
			}
			syncHook = func(p string) {
				mu.Lock()
				defer mu.Unlock()
				if p == c.point {
					if seen++; seen == c.nth {
						free = fulldisk.Fill(t, disk, c.leave, c.inodes)
					}
				}
			}
			_, err = e.sync(SyncOptions{})
			syncHook = nil
			if seen < c.nth {
				t.Fatalf("the run passed %s %d times, never the %dth: %v", c.point, seen, c.nth, err)
			}
			if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrSync) || !strings.Contains(err.Error(), disk) {
				t.Errorf("run on a full disk: %v; want ErrSync and ENOSPC naming a file under %s", err, disk)
			}
			t.Logf("%v", err)
			if after, err := os.ReadFile(filepath.Join(stateDir, state.FileName)); err != nil || !bytes.Equal(after, stateBytes) {
				t.Errorf("the state changed in the failed run (%v)", err)
			}
			next := BundleName(before.Sequence + 1)
			ents, _ := os.ReadDir(bundles)
			if len(ents) != len(bundlesBefore) {
				var names []string
				for _, en := range ents {
					names = append(names, en.Name())
				}
				t.Errorf("after the failed run the bundles folder holds %v (%d files before)", names, len(bundlesBefore))
			}
			for _, en := range ents {
				if strings.HasPrefix(en.Name(), next) {
					t.Errorf("the failed run left %s, a file of bundle %d, which the state does not record", en.Name(), before.Sequence+1)
				}
			}

			free()
			res, err := e.sync(SyncOptions{})
			if err != nil {
				t.Fatalf("the run after the disk was freed: %v", err)
			}
			if res.Bundle == nil || res.Bundle.Sequence != before.Sequence+1 {
				t.Fatalf("the run after the disk was freed made %+v, want sequence %d", res.Bundle, before.Sequence+1)
			}
			_, blobs := e.openBundle(res.Bundle)
			for _, p := range newFiles {
				want, _ := os.ReadFile(filepath.Join(e.up, "tools", p))
				if !bytes.Equal(blobs[sumOf(string(want))], want) {
					t.Errorf("%s is not in bundle %d", p, res.Bundle.Sequence)
				}
			}
			if left := leftovers(t, disk); len(left) != 0 {
				t.Errorf("after the run that succeeded, the disk still holds %v", left)
			}
		})
	}

	// No gap: bundles 1..N, each the one the state recorded.
	st, err := state.Load(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for s := uint64(1); s <= st.Sequence; s++ {
		p := filepath.Join(bundles, BundleName(s)+".tar.zst")
		m, _ := e.openBundle(&BundleResult{Path: p, Paths: []string{p, p + ".minisig"}})
		if m.Sequence != s {
			t.Errorf("%s says sequence %d", p, m.Sequence)
		}
	}
	if st.Sequence != 5 {
		t.Errorf("state at sequence %d after four failed and five good runs, want 5", st.Sequence)
	}
}
