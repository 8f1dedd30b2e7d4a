package repo_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/fulldisk"
	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/mirror"
	"github.com/mirror-tool/mirror/mirror/repo"
	"github.com/mirror-tool/mirror/mirror/store"
)

// servedTree is where `current` points and the SHA-256 of every file
// served there.
func servedTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, repo.CurrentLink))
	if err != nil {
		t.Fatalf("no current generation: %v", err)
	}
	out := map[string]string{"->": target}
	root := filepath.Join(dir, repo.CurrentLink) + "/"
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(data)
		out[strings.TrimPrefix(p, root)] = hex.EncodeToString(s[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readOrNil(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return b
}

// TestImportFullDiskTmpfs imports into a repository on a real tmpfs that
// fills up at named steps of an import: while the blobs are stored, while
// the new tree is built (no folder or link can be made), while the
// generation's record is written, and after the switch, while state.json
// is written. Before the switch the import must fail with ENOSPC and leave the served tree, state.json, receipt.json and the
// generations as they were, with no temporary file left; once the disk has
// room the same bundle imports. After the switch the bundle is imported
// (served whole) with a warning, and the next import repairs state.json.
// Every successful import leaves exactly the blobs of the kept generation.
func TestImportFullDiskTmpfs(t *testing.T) {
	key, err := minisign.GenerateKey(rand.NewChaCha8([32]byte{'f', 'd'}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	media := t.TempDir()
	disk := fulldisk.Mount(t, 8<<20, 2048)
	dir := filepath.Join(disk, "repo")
	tree := map[string][]byte{}
	// bundle writes sequence seq (a delta on seq-1 but for 1) with n new
	// incompressible files of 64 KiB in folders of their own; it carries
	// only the new files.
	bundleOf := func(seq uint64, n int) []string {
		m := &bundle.Manifest{Sequence: seq, BaseSequence: seq - 1, Created: now, Expires: now.Add(24 * time.Hour), ToolVersion: "test",
			Sources: []bundle.Source{{Name: "tools", Type: "files", URL: "https://example.org/"}}}
		blobs := map[string][]byte{}
		for i := range n {
			p := fmt.Sprintf("tools/s%d-%d/f-%d.tar.gz", seq, i, i)
			b := make([]byte, 64<<10)
			rand.NewChaCha8([32]byte{byte(seq), byte(i)}).Read(b)
			tree[p] = b
			s := sha256.Sum256(b)
			blobs[hex.EncodeToString(s[:])] = b
			m.Blobs = append(m.Blobs, bundle.Blob{SHA256: hex.EncodeToString(s[:]), Size: int64(len(b))})
		}
		for _, p := range slices.Sorted(func(yield func(string) bool) {
			for p := range tree {
				if !yield(p) {
					return
				}
			}
		}) {
			s := sha256.Sum256(tree[p])
			m.Tree = append(m.Tree, bundle.Entry{Path: p, SHA256: hex.EncodeToString(s[:]), Size: int64(len(tree[p]))})
		}
		slices.SortFunc(m.Blobs, func(a, b bundle.Blob) int { return strings.Compare(a.SHA256, b.SHA256) })
		src := func(h string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blobs[h])), nil }
		w, err := bundle.Write(context.Background(), media, fmt.Sprintf("b%d", seq), m, key, src, bundle.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return w.Paths[:1]
	}
	opts := mirror.ImportOptions{Repo: dir, Pub: key.Public(), Keep: 1}
	importOK := func(seq uint64, b []string) {
		t.Helper()
		res, err := mirror.Import(context.Background(), opts, b)
		if err != nil || len(res) != 1 || res[0].Result != repo.ResultImported || res[0].Warning != "" {
			t.Fatalf("import of sequence %d with room on the disk: %+v, %v", seq, res, err)
		}
		checkImported(t, dir, seq, tree)
	}
	importOK(1, bundleOf(1, 4))

	seq := uint64(1)
	for _, c := range []struct {
		name     string
		step     string // the checkpoint at which the disk is filled
		nth      int    // ... the nth time it is passed
		inodes   bool   // no file, folder or link can be made either
		switched bool   // the step is after the switch
	}{
		{"while storing blobs", "blob", 1, false, false},
		{"while building the tree", "link", 2, true, false},
		{"while writing the record", "synced", 1, false, false},
		{"while writing state.json", "switched", 1, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			seq++
			b := bundleOf(seq, 3)
			served := servedTree(t, dir)
			stateBytes := readOrNil(t, filepath.Join(dir, repo.StateFile))
			receiptBytes := readOrNil(t, filepath.Join(dir, repo.ReceiptFile))
			gens, err := repo.Generations(dir)
			if err != nil {
				t.Fatal(err)
			}
			seen := 0
			free := func() {}
			repo.SetCheckpointHook(func(step string) {
				if step == c.step {
					if seen++; seen == c.nth {
						free = fulldisk.Fill(t, disk, 0, c.inodes)
					}
				}
			})
			res, err := mirror.Import(context.Background(), opts, b)
			repo.SetCheckpointHook(nil)
			defer free()
			if seen < c.nth {
				t.Fatalf("the import passed %s %d times, never the %dth: %+v, %v", c.step, seen, c.nth, res, err)
			}
			t.Logf("result %+v, error %v", res, err)

			if c.switched {
				if len(res) != 1 || res[0].Result != repo.ResultImported || !strings.Contains(res[0].Warning, "no space left on device") {
					t.Errorf("full disk after the switch: %+v, %v; want imported with a warning naming the full disk", res, err)
				}
				if got, want := servedTree(t, dir), expectedTree(seq, tree); !mapsEqual(got, want) {
					t.Errorf("after the switch the served tree is not generation %d", seq)
				}
				free()
				seq++
				importOK(seq, bundleOf(seq, 1))
				st, err := repo.ReadState(dir)
				if err != nil || !st.Has(seq-1, bundleID(t, key, b)) {
					t.Errorf("state.json after the next import: %+v, %v; its history lacks sequence %d", st, err, seq-1)
				}
				return
			}

			if !errors.Is(err, syscall.ENOSPC) || len(res) != 0 {
				t.Errorf("import on a full disk: %+v, %v; want ENOSPC and no result", res, err)
			}
			if !mapsEqual(servedTree(t, dir), served) {
				t.Error("the served tree changed")
			}
			if got := readOrNil(t, filepath.Join(dir, repo.StateFile)); !bytes.Equal(got, stateBytes) {
				t.Errorf("state.json changed:\n%s", got)
			}
			if got := readOrNil(t, filepath.Join(dir, repo.ReceiptFile)); !bytes.Equal(got, receiptBytes) {
				t.Errorf("receipt.json changed:\n%s", got)
			}
			if g, _ := repo.Generations(dir); !slices.Equal(g, gens) {
				t.Errorf("generations %v, were %v", g, gens)
			}
			for _, d := range []string{filepath.Join(dir, repo.TmpDir), filepath.Join(dir, repo.StoreDir, "tmp")} {
				if ents, _ := os.ReadDir(d); len(ents) != 0 {
					t.Errorf("the failed import left %s/%s", d, ents[0].Name())
				}
			}
			free()
			importOK(seq, b)
		})
	}
}

// checkImported: generation seq is served with exactly files, state.json
// and receipt.json say seq, nothing temporary is left, and the store holds
// exactly the blobs of the one generation kept.
func checkImported(t *testing.T, dir string, seq uint64, files map[string][]byte) {
	t.Helper()
	if got, want := servedTree(t, dir), expectedTree(seq, files); !mapsEqual(got, want) {
		t.Errorf("generation %d is not served as imported", seq)
	}
	if st, err := repo.ReadState(dir); err != nil || st.Sequence != seq {
		t.Errorf("state.json: %+v, %v; want sequence %d", st, err, seq)
	}
	rc, err := repo.ReadReceipt(dir)
	if err != nil || rc.Sequence != seq {
		t.Fatalf("receipt.json: %+v, %v; want sequence %d", rc, err, seq)
	}
	for _, d := range []string{filepath.Join(dir, repo.TmpDir), filepath.Join(dir, repo.StoreDir, "tmp")} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("%s holds %s after a successful import", d, ents[0].Name())
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, repo.StoreDir, store.UnsyncedMarker)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the store's batch marker is left: %v", err)
	}
	want := map[string]bool{}
	for _, b := range files {
		s := sha256.Sum256(b)
		want[hex.EncodeToString(s[:])] = true
	}
	var stored []string
	st, err := store.Open(filepath.Join(dir, repo.StoreDir))
	if err != nil {
		t.Fatal(err)
	}
	st.Walk(func(sum string, _ int64) error {
		stored = append(stored, sum)
		return nil
	})
	if len(stored) != len(want) || len(rc.Blobs) != len(want) {
		t.Errorf("the store holds %d blobs, the receipt lists %d, generation %d needs %d", len(stored), len(rc.Blobs), seq, len(want))
	}
}

func expectedTree(seq uint64, files map[string][]byte) map[string]string {
	out := map[string]string{"->": filepath.Join(repo.GenerationsDir, fmt.Sprint(seq))}
	for p, b := range files {
		s := sha256.Sum256(b)
		out[p] = hex.EncodeToString(s[:])
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// bundleID reads the id of the bundle at b.
func bundleID(t *testing.T, key minisign.PrivateKey, b []string) string {
	t.Helper()
	rd, err := bundle.Open(context.Background(), b, key.Public(), bundle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	return rd.Manifest().ID
}

// TestImportLogOnFullDisk: the disk fills up after the switch and the
// collection, while the import's line is appended to import.log, and the
// line fits only in part (the file's last page has some room left). The
// bundle is imported and served; once the disk has room, the next
// import's line must be readable: a torn line must not swallow the next.
func TestImportLogOnFullDisk(t *testing.T) {
	key, err := minisign.GenerateKey(rand.NewChaCha8([32]byte{'l', 'g'}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	media := t.TempDir()
	disk := fulldisk.Mount(t, 1<<20, 1024)
	dir := filepath.Join(disk, "repo")
	write := func(seq uint64, content string) []string { return oneFileBundle(t, media, key, seq, content, now) }
	opts := mirror.ImportOptions{Repo: dir, Pub: key.Public()}
	b1 := write(1, "one")
	if _, err := mirror.Import(context.Background(), opts, b1); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, repo.LogFile)
	first, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lineLen := int64(len(first)) // the line of an import; the next one is as long within a few bytes
	// Importing bundle 1 again appends a shorter line each time, until
	// the last page of the log has room for part of an import's line.
	page := int64(os.Getpagesize())
	for room := int64(0); room < 16 || room > lineLen-32; {
		if _, err := mirror.Import(context.Background(), opts, b1); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(logPath)
		if err != nil {
			t.Fatal(err)
		}
		room = (page - fi.Size()%page) % page
	}

	free := func() {}
	repo.SetCheckpointHook(func(step string) {
		if step == "collected" {
			free = fulldisk.Fill(t, disk, 0, false)
		}
	})
	res, err := mirror.Import(context.Background(), opts, write(2, "two"))
	repo.SetCheckpointHook(nil)
	free()
	t.Logf("result %+v, error %v", res, err)
	if err != nil || len(res) != 1 || res[0].Result != repo.ResultImported || !strings.Contains(res[0].Warning, "no space left on device") {
		t.Fatalf("the import whose log line did not fit: %+v, %v; want imported, with a warning naming the full disk", res, err)
	}
	if served, err := os.ReadFile(filepath.Join(dir, repo.CurrentLink, "tools/a")); err != nil || string(served) != "two" {
		t.Fatalf("served %q (%v), want generation 2", served, err)
	}
	if _, err := mirror.Import(context.Background(), opts, write(3, "three")); err != nil {
		t.Fatalf("the next import: %v", err)
	}
	log, err := repo.ReadLog(dir, 1)
	if err != nil || len(log) != 1 || log[0].Result != repo.ResultImported || log[0].Sequence != 3 {
		t.Fatalf("the last log entry after the next import: %+v, %v; want sequence 3 imported", log, err)
	}
}
