package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirror-tool/mirror/internal/fulldisk"
)

// TestFullDiskCLI: `mirror sync` and `mirror import` on a real tmpfs with
// no room for what they write exit 1 (failed, nothing changed), say that
// the disk is full and, in the hint, to free space on it: running again as
// it is fails the same way. With room, the next run succeeds.
func TestFullDiskCLI(t *testing.T) {
	t.Run("sync", func(t *testing.T) {
		cfg := syncCLIEnv(t)
		disk := fulldisk.Mount(t, 1<<20, 4096)
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(string(b), `dir = "bundles"`, `dir = "`+filepath.Join(disk, "bundles")+`"`, 1)
		text = strings.Replace(text, `state = "state"`, `state = "`+filepath.Join(disk, "state")+`"`, 1)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		free := fulldisk.Fill(t, disk, 0, false)
		code, out, errs := runCLI("sync", "--config", cfg)
		t.Logf("full disk: exit %d\n%s%s", code, out, errs)
		if code != exitFailed || !strings.Contains(errs, "no space left on device") {
			t.Errorf("sync on a full disk: exit %d, want %d naming the full disk", code, exitFailed)
		}
		if !strings.Contains(errs, "hint: free space") {
			t.Errorf("sync on a full disk: the hint does not say to free space")
		}
		if ents, _ := os.ReadDir(filepath.Join(disk, "bundles")); len(ents) != 0 {
			t.Errorf("the failed run left %s in the bundles folder", ents[0].Name())
		}
		free()
		if code, out, errs := runCLI("sync", "--config", cfg); code != exitRejected || !strings.Contains(out, "mirror-000001.tar.zst (sequence 1") {
			t.Fatalf("sync with room: exit %d\n%s%s", code, out, errs)
		}
	})
	t.Run("import", func(t *testing.T) {
		f := newImpFixture(t)
		disk := fulldisk.Mount(t, 2<<20, 4096)
		dir := filepath.Join(disk, "repo")
		free := fulldisk.Fill(t, disk, 100<<10, false) // bundle 1 carries 8 blobs of 64 KiB
		code, out, errs := runCLI("import", "--pub", f.pub, "--repo", dir, f.b1[0])
		t.Logf("full disk: exit %d\n%s%s", code, out, errs)
		if code != exitFailed || !strings.Contains(errs, "no space left on device") || !strings.Contains(errs, "hint: free space on the disk of "+dir) {
			t.Errorf("import on a full disk: exit %d, want %d naming the full disk, with the hint to free space", code, exitFailed)
		}
		if _, err := os.Lstat(filepath.Join(dir, "current")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the failed import made a current generation: %v", err)
		}
		free()
		if code, out, errs := runCLI("import", "--pub", f.pub, "--repo", dir, f.b1[0]); code != exitOK || !strings.Contains(out, "imported sequence 1") {
			t.Fatalf("import with room: exit %d\n%s%s", code, out, errs)
		}
		if impTreeHash(t, dir) != treeHashOf(f.tree1, 1) {
			t.Fatal("generation 1 is not served whole")
		}
	})
}
