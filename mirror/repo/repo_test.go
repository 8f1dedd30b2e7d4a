package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

type blob struct {
	data []byte
	sum  string
}

func mkblob(s string) blob {
	h := sha256.Sum256([]byte(s))
	return blob{[]byte(s), hex.EncodeToString(h[:])}
}

func open(t *testing.T, dir string) *Repo {
	t.Helper()
	r, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ingest(t *testing.T, r *Repo, blobs ...blob) {
	t.Helper()
	in := r.Ingest(context.Background())
	for _, b := range blobs {
		if err := in.Add(b.sum, int64(len(b.data)), bytes.NewReader(b.data)); err != nil {
			in.Wait()
			t.Fatal(err)
		}
	}
	if err := in.Wait(); err != nil {
		t.Fatal(err)
	}
}

func record(seq uint64, files map[string]blob) *Record {
	rec := &Record{Sequence: seq, BundleID: fmt.Sprintf("id%d", seq), Signer: "0123456789ABCDEF",
		Created: time.Unix(1700000000, 0).UTC(), Expires: time.Unix(1800000000, 0).UTC(), Imported: time.Unix(1700000100, 0).UTC()}
	for p, b := range files {
		rec.Tree = append(rec.Tree, Entry{Path: p, SHA256: b.sum, Size: int64(len(b.data))})
	}
	slices.SortFunc(rec.Tree, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return rec
}

// served reads every file under DIR/current into a map.
func served(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	root := filepath.Join(dir, CurrentLink)
	err := filepath.WalkDir(root+"/", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPublishSwitchCollect(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	defer r.Close()
	a, b, c := mkblob("alpha"), mkblob("bravo"), mkblob("charlie")
	ingest(t, r, a, b)
	if _, err := Current(dir); !errors.Is(err, ErrNotRepository) {
		t.Fatalf("Current before any import: %v, want ErrNotRepository", err)
	}
	ctx := context.Background()
	if err := r.Publish(ctx, record(1, map[string]blob{"tools/a.txt": a, "tools/sub/b.bin": b}), []byte("manifest1")); err != nil {
		t.Fatal(err)
	}
	if got, want := served(t, dir), map[string]string{"tools/a.txt": "alpha", "tools/sub/b.bin": "bravo"}; !mapsEqual(got, want) {
		t.Fatalf("served %v, want %v", got, want)
	}
	// Hard links into the store, not copies.
	fi1, _ := os.Stat(filepath.Join(dir, "current/tools/a.txt"))
	fi2, _ := os.Stat(r.Store().Path(a.sum))
	if !os.SameFile(fi1, fi2) {
		t.Error("published file is not a hard link to the store blob")
	}
	if _, _, err := r.Collect(ctx, 3); err != nil {
		t.Fatal(err)
	}
	rc, err := ReadReceipt(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Sequence != 1 || rc.BundleID != "id1" || !slices.Equal(rc.Blobs, sorted(a.sum, b.sum)) {
		t.Fatalf("receipt %+v", rc)
	}

	// Generation 2: a dropped, b kept, c new.
	ingest(t, r, c)
	if err := r.Publish(ctx, record(2, map[string]blob{"tools/sub/b.bin": b, "tools/c": c}), nil); err != nil {
		t.Fatal(err)
	}
	if got, want := served(t, dir), map[string]string{"tools/c": "charlie", "tools/sub/b.bin": "bravo"}; !mapsEqual(got, want) {
		t.Fatalf("served %v, want %v", got, want)
	}
	st, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sequence != 2 || !st.Has(1, "id1") || !st.Has(2, "id2") || st.Has(2, "id1") {
		t.Fatalf("state %+v", st)
	}
	// Keep 3: generation 1 and blob a stay.
	if g, n, err := r.Collect(ctx, 3); err != nil || g != 0 || n != 0 {
		t.Fatalf("Collect(3) = %d, %d, %v; want 0, 0", g, n, err)
	}
	// Keep 1: generation 1 and blob a go.
	if g, n, err := r.Collect(ctx, 1); err != nil || g != 1 || n != 1 {
		t.Fatalf("Collect(1) = %d, %d, %v; want 1, 1", g, n, err)
	}
	if gens, _ := Generations(dir); !slices.Equal(gens, []uint64{2}) {
		t.Fatalf("generations %v, want [2]", gens)
	}
	for _, name := range []string{"1.json", "1.manifest"} {
		if _, err := os.Lstat(filepath.Join(dir, GenerationsDir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s not collected: %v", name, err)
		}
	}
	if ok, _ := r.Store().Has(a.sum); ok {
		t.Error("unreferenced blob a not collected")
	}
	rc, _ = ReadReceipt(dir)
	if rc.Sequence != 2 || !slices.Equal(rc.Blobs, sorted(b.sum, c.sum)) {
		t.Fatalf("receipt after collect %+v", rc)
	}
	// Not newer: refused, nothing changes.
	if err := r.Publish(ctx, record(2, map[string]blob{"x": b}), nil); err == nil {
		t.Fatal("publishing generation 2 again succeeded")
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestPublishMissingBlob(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	defer r.Close()
	a, b := mkblob("a"), mkblob("b")
	ingest(t, r, a)
	err := r.Publish(context.Background(), record(1, map[string]blob{"a": a, "b": b}), nil)
	var me *MissingBlobError
	if !errors.As(err, &me) || !errors.Is(err, ErrMissingBlob) || me.Count != 1 || me.Missing[0].Path != "b" {
		t.Fatalf("Publish with a missing blob: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, CurrentLink)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("current exists after a refused publish")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, TmpDir)); len(ents) != 0 {
		t.Fatalf("tmp not empty: %v", ents)
	}
}

func TestIngestRefusesMismatch(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	defer r.Close()
	a := mkblob("the real content")
	for _, tc := range []struct {
		name string
		data string
		size int64
	}{
		{"other bytes", "the fake content", int64(len(a.data))},
		{"short", "the real", int64(len(a.data))},
		{"long", "the real content!", int64(len(a.data))},
	} {
		// Add fails on a size it sees while reading; the writer's hash
		// check fails after Add returned, and Wait reports it.
		in := r.Ingest(context.Background())
		err := in.Add(a.sum, tc.size, strings.NewReader(tc.data))
		if werr := in.Wait(); err == nil {
			err = werr
		}
		if !errors.Is(err, ErrBlobMismatch) {
			t.Errorf("%s: %v, want ErrBlobMismatch", tc.name, err)
		}
		if ok, _ := r.Store().Has(a.sum); ok {
			t.Fatalf("%s: mismatching blob became visible", tc.name)
		}
	}
	if ents, _ := os.ReadDir(r.Store().TempDir()); len(ents) != 0 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestIngestFullDisk(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	defer r.Close()
	ingest(t, r, mkblob("first"))
	if err := r.Publish(context.Background(), record(1, map[string]blob{"f": mkblob("first")}), nil); err != nil {
		t.Fatal(err)
	}
	before := served(t, dir)
	setFullDiskAfter(t, 100)
	big := mkblob(strings.Repeat("x", 1000))
	in := r.Ingest(context.Background())
	err := in.Add(big.sum, 1000, bytes.NewReader(big.data))
	if werr := in.Wait(); err == nil {
		err = werr // the writer failed after Add returned
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Add on a full disk: %v, want ENOSPC", err)
	}
	if ok, _ := r.Store().Has(big.sum); ok {
		t.Fatal("partly written blob visible")
	}
	if ents, _ := os.ReadDir(r.Store().TempDir()); len(ents) != 0 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if got := served(t, dir); !mapsEqual(got, before) {
		t.Fatal("served tree changed")
	}
}

// setFullDiskAfter makes WrapWriter fail with ENOSPC after n bytes, for the
// rest of the test.
func setFullDiskAfter(t *testing.T, n int64) {
	hookOnce.Do(loadHooks)
	old := enospcAfter
	enospcAfter = n
	written.Store(0)
	t.Cleanup(func() { enospcAfter = old; written.Store(0) })
}

func TestOpenRecovers(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	a, b := mkblob("a"), mkblob("b")
	ingest(t, r, a, b)
	ctx := context.Background()
	if err := r.Publish(ctx, record(1, map[string]blob{"a": a}), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Collect(ctx, 3); err != nil {
		t.Fatal(err)
	}
	stateBefore, _ := os.ReadFile(filepath.Join(dir, StateFile))
	// What a kill leaves: a half-built tree in tmp, a placed but never
	// switched generation 2 with its record, a record without a tree, a
	// temporary blob.
	os.MkdirAll(filepath.Join(dir, TmpDir, "gen-2", "x"), 0o755)
	os.MkdirAll(GenerationPath(dir, 2), 0o755)
	os.WriteFile(filepath.Join(dir, GenerationsDir, "2.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, GenerationsDir, "7.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(r.Store().TempDir(), tmpPrefix+"123"), []byte("half"), 0o644)
	r.Close()

	r = open(t, dir)
	defer r.Close()
	if ents, _ := os.ReadDir(filepath.Join(dir, TmpDir)); len(ents) != 0 {
		t.Errorf("tmp not emptied: %v", ents)
	}
	if gens, _ := Generations(dir); !slices.Equal(gens, []uint64{1}) {
		t.Errorf("generations %v, want [1]", gens)
	}
	for _, n := range []string{"2.json", "7.json"} {
		if _, err := os.Lstat(filepath.Join(dir, GenerationsDir, n)); err == nil {
			t.Errorf("orphan record %s kept", n)
		}
	}
	if ents, _ := os.ReadDir(r.Store().TempDir()); len(ents) != 0 {
		t.Errorf("temporary blob kept: %v", ents)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, StateFile)); !bytes.Equal(after, stateBefore) {
		t.Error("state.json rewritten although it was current")
	}
	// Generation 2 can be published now (b was collected: unreferenced).
	ingest(t, r, b)
	if err := r.Publish(ctx, record(2, map[string]blob{"b": b}), nil); err != nil {
		t.Fatal(err)
	}
	r.Close()

	// A kill after the switch, before state.json: Open repairs state and
	// receipt from the record and logs it.
	os.WriteFile(filepath.Join(dir, StateFile), stateBefore, 0o644)
	r = open(t, dir)
	st, err := ReadState(dir)
	if err != nil || st.Sequence != 2 || !st.Has(1, "id1") {
		t.Fatalf("state not repaired: %+v %v", st, err)
	}
	log, _ := ReadLog(dir, 5)
	if len(log) == 0 || log[len(log)-1].Result != ResultRecovered {
		t.Fatalf("no recovery line in the log: %+v", log)
	}
	r.Close()
}

func TestLockExcludes(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	if _, err := Open(context.Background(), dir); err == nil {
		t.Fatal("second Open while locked succeeded")
	}
	r.Close()
	r2 := open(t, dir)
	r2.Close()
}

func TestCheckTree(t *testing.T) {
	s := mkblob("x").sum
	for _, tc := range []struct {
		paths []string
		ok    bool
	}{
		{[]string{"a", "b/c", "b/d/e"}, true},
		{[]string{"debian/dists/bookworm/InRelease", "debian/pool/main/h/hello_2.10.deb"}, true},
		{[]string{""}, false},
		{[]string{"/etc/passwd"}, false},
		{[]string{"../x"}, false},
		{[]string{"a/../../x"}, false},
		{[]string{"a/./b"}, false},
		{[]string{"a//b"}, false},
		{[]string{"a/"}, false},
		{[]string{"."}, false},
		{[]string{"a\\b"}, false},
		{[]string{"a\x00b"}, false},
		{[]string{"c:x"}, false},
		{[]string{"a\nb"}, false},
		{[]string{"a", "a"}, false},
		{[]string{"README", "readme"}, false},
		{[]string{"a", "a/b"}, false},
		{[]string{"a/b", "a"}, false},
		{[]string{"A/b", "a"}, false},
		{[]string{"a\xffb"}, false},                 // not UTF-8: JSON would carry it as U+FFFD
		{[]string{"pkg/\u212a", "pkg/k"}, false},    // Kelvin sign and k
		{[]string{"\u017fum", "SUM"}, false},        // long s and S
		{[]string{"\u03c3", "\u03c2"}, false},       // medial and final sigma
		{[]string{"caf\u00e9", "CAF\u00c9"}, false}, // é and É
		{[]string{"stra\u00dfe", "STRASSE"}, true},  // ß is not S S under simple folding
		{[]string{strings.Repeat("d/", MaxPathDepth) + "f"}, false},
	} {
		var tree []Entry
		for _, p := range tc.paths {
			tree = append(tree, Entry{Path: p, SHA256: s, Size: 1})
		}
		if err := CheckTree(tree); (err == nil) != tc.ok {
			t.Errorf("CheckTree(%q) = %v, want ok=%v", tc.paths, err, tc.ok)
		}
	}
	if err := CheckTree([]Entry{{Path: "a", SHA256: strings.ToUpper(s), Size: 1}}); err == nil {
		t.Error("upper-case sum accepted")
	}
}

// TestAppendAfterTornLine: a line cut short by a crash does not swallow
// the next one appended.
func TestAppendAfterTornLine(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	defer r.Close()
	if err := os.WriteFile(filepath.Join(dir, LogFile), []byte(`{"time":"2026-01-01T00:00:00Z","sequence":1,"res`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.AppendLog(LogEntry{Time: time.Now(), Sequence: 2, Result: ResultImported}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLog(dir, 2)
	if err != nil || len(got) != 2 || got[0].Result != "unreadable" || got[1].Sequence != 2 || got[1].Result != ResultImported {
		t.Fatalf("log after a torn line: %+v, %v; want the torn line unreadable and sequence 2 imported", got, err)
	}
}

func TestLogTornLine(t *testing.T) {
	data := []byte(`{"time":"2026-01-01T00:00:00Z","sequence":1,"result":"imported"}` + "\n" +
		`{"time":"2026-01-02T00:00:00Z","sequence":2,"result":"refused","message":"rollback"}` + "\n" +
		`{"time":"2026-01-03T00:0`)
	got := ParseLog(data, 0)
	if len(got) != 3 || got[0].Sequence != 1 || got[1].Message != "rollback" || got[2].Result != "unreadable" {
		t.Fatalf("ParseLog: %+v", got)
	}
	if got := ParseLog(data, 2); len(got) != 2 || got[0].Sequence != 2 {
		t.Fatalf("ParseLog last 2: %+v", got)
	}
}

// The blobs of an import are adopted without an fsync each; one syncfs in
// Publish makes them durable before the tree links them (a link changes a
// blob's ctime: a batch window over the build would make Recover re-hash
// the whole tree after a crash). The store's batch marker must be on disk
// from the first new blob until that syncfs, and gone before the tree is
// built, placed and switched.
func TestPublishSyncsBatchBeforeSwitch(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	defer r.Close()
	ctx := context.Background()
	a, b := mkblob("alpha"), mkblob("beta")
	marker := filepath.Join(dir, StoreDir, "unsynced")
	ingest(t, r, a, b)
	if _, err := os.Lstat(marker); err != nil || !r.Store().Pending() {
		t.Fatalf("after ingest: marker %v, pending %v; want the batch marked", err, r.Store().Pending())
	}
	steps := map[string]bool{}
	onCheckpoint = func(step string) {
		switch step {
		case "link", "built", "synced", "placed", "switched":
			_, err := os.Lstat(marker)
			steps[step] = steps[step] || err == nil // marker present, at any pass
		}
	}
	t.Cleanup(func() { onCheckpoint = nil })
	if err := r.Publish(ctx, record(1, map[string]blob{"d/a": a, "d/e/b": b}), nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"link": false, "built": false, "synced": false, "placed": false, "switched": false}
	if !maps.Equal(steps, want) {
		t.Fatalf("marker present at steps %v, want %v", steps, want)
	}
	if got := served(t, dir); got["d/a"] != "alpha" || got["d/e/b"] != "beta" {
		t.Fatalf("served %v", got)
	}
	// A generation from stored blobs only (no batch): no marker at all.
	steps = map[string]bool{}
	if err := r.Publish(ctx, record(2, map[string]blob{"x/y/a": a}), nil); err != nil {
		t.Fatal(err)
	}
	if want := map[string]bool{"link": false, "built": false, "synced": false, "placed": false, "switched": false}; !maps.Equal(steps, want) {
		t.Fatalf("second publish: marker present at steps %v, want %v", steps, want)
	}
}

// A kill between ingest and Publish's syncfs leaves the marker and, after a
// power loss, possibly a torn blob under its name. Open re-hashes the batch,
// drops the torn blob (never served, never taken as "already stored") and
// keeps the good one; the next import stores it again.
func TestOpenRecoversTornBatch(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	a, b := mkblob("kept intact"), mkblob("torn by the crash")
	ingest(t, r, a, b)
	r.Close() // no Publish: the batch was never synced
	p := r.Store().Path(b.sum)
	os.Chmod(p, 0o644)
	if err := os.Truncate(p, 4); err != nil {
		t.Fatal(err)
	}
	r = open(t, dir)
	defer r.Close()
	if ok, _ := r.Store().Has(b.sum); ok {
		t.Fatal("torn blob kept after Open")
	}
	if ok, _ := r.Store().Has(a.sum); !ok {
		t.Fatal("intact blob of the batch removed")
	}
	if _, err := os.Lstat(filepath.Join(dir, StoreDir, "unsynced")); !errors.Is(err, fs.ErrNotExist) || r.Store().Pending() {
		t.Fatalf("marker after recovery: %v", err)
	}
	in := r.Ingest(context.Background())
	for _, x := range []blob{a, b} {
		if err := in.Add(x.sum, int64(len(x.data)), bytes.NewReader(x.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Wait(); err != nil || in.NewBlobs != 1 {
		t.Fatalf("re-ingest: %v, %d new blobs, want 1 (the torn one)", err, in.NewBlobs)
	}
	if err := r.Publish(context.Background(), record(1, map[string]blob{"a": a, "b": b}), nil); err != nil {
		t.Fatal(err)
	}
	if got := served(t, dir); got["a"] != string(a.data) || got["b"] != string(b.data) {
		t.Fatalf("served %v", got)
	}
}

// Ingest reads in Add and writes in a goroutine of its own: blobs of every
// size around the chunk boundaries arrive whole; a blob that fails its hash
// check in the writer becomes no file, and the Adds after it fail; a source
// that fails part way leaves nothing behind.
func TestIngestPipeline(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	defer r.Close()
	var blobs []blob
	for i, n := range []int{0, 1, ingestChunk - 1, ingestChunk, ingestChunk + 1, 3*ingestChunk + 7, ingestChunks*ingestChunk + 5} {
		data := bytes.Repeat([]byte{byte('a' + i)}, n)
		blobs = append(blobs, mkblob(string(data)))
	}
	in := r.Ingest(context.Background())
	for _, b := range blobs {
		if err := in.Add(b.sum, int64(len(b.data)), bytes.NewReader(b.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Wait(); err != nil {
		t.Fatal(err)
	}
	if in.NewBlobs != len(blobs) {
		t.Fatalf("%d new blobs, want %d", in.NewBlobs, len(blobs))
	}
	for _, b := range blobs {
		got, err := os.ReadFile(r.Store().Path(b.sum))
		if err != nil || !bytes.Equal(got, b.data) {
			t.Fatalf("blob of %d bytes: %d bytes stored, %v", len(b.data), len(got), err)
		}
	}

	// The writer's hash check fails after Add returned: the blob never
	// gets a name, and the ingest stops.
	bad := mkblob(strings.Repeat("b", 3*ingestChunk))
	forged := bytes.Repeat([]byte("B"), 3*ingestChunk)
	after := mkblob("after the failure")
	in = r.Ingest(context.Background())
	err := in.Add(bad.sum, int64(len(forged)), bytes.NewReader(forged))
	for i := 0; err == nil && i < 100; i++ {
		time.Sleep(5 * time.Millisecond) // until the writer has checked it
		err = in.Add(after.sum, int64(len(after.data)), bytes.NewReader(after.data))
	}
	if werr := in.Wait(); err == nil {
		err = werr
	}
	if !errors.Is(err, ErrBlobMismatch) {
		t.Fatalf("forged blob: %v, want ErrBlobMismatch", err)
	}
	if ok, _ := r.Store().Has(bad.sum); ok {
		t.Fatal("forged blob stored")
	}

	// A source failing part way: its own error, no file.
	cut := mkblob(strings.Repeat("c", 2*ingestChunk))
	src := io.MultiReader(bytes.NewReader(cut.data[:ingestChunk+3]), iotest.ErrReader(errors.New("the medium failed")))
	in = r.Ingest(context.Background())
	err = in.Add(cut.sum, int64(len(cut.data)), src)
	in.Wait()
	if err == nil || !strings.Contains(err.Error(), "the medium failed") {
		t.Fatalf("failing source: %v", err)
	}
	if ok, _ := r.Store().Has(cut.sum); ok {
		t.Fatal("blob of a failed source stored")
	}
	if ents, _ := os.ReadDir(r.Store().TempDir()); len(ents) != 0 {
		t.Fatalf("temporary files left: %v", ents)
	}

	// A cancelled context stops Add.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in = r.Ingest(ctx)
	err = in.Add(after.sum, int64(len(after.data)), bytes.NewReader(after.data))
	in.Wait()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestPublishErrorAfterSwitch: when writing state.json fails after
// `current` was switched (ENOSPC, EIO; here state.json is made a folder),
// Publish says the new generation is served (*SwitchedError) instead of
// "nothing served changed", and the next Open repairs state.json.
func TestPublishErrorAfterSwitch(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	ctx := context.Background()
	a, b := mkblob("one"), mkblob("two")
	ingest(t, r, a, b)
	if err := r.Publish(ctx, record(1, map[string]blob{"d/a": a}), nil); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, StateFile)
	onCheckpoint = func(step string) {
		if step == "switched" {
			os.Remove(st)
			os.MkdirAll(filepath.Join(st, "x"), 0o755)
		}
	}
	t.Cleanup(func() { onCheckpoint = nil })
	err := r.Publish(ctx, record(2, map[string]blob{"d/a": b}), nil)
	var se *SwitchedError
	if !errors.As(err, &se) || se.Sequence != 2 {
		t.Fatalf("Publish with state.json unwritable after the switch: %v, want a *SwitchedError for 2", err)
	}
	if cur, _ := Current(dir); cur != 2 || served(t, dir)["d/a"] != "two" {
		t.Fatalf("current %d, served %v: want generation 2", cur, served(t, dir))
	}
	onCheckpoint = nil
	r.Close()
	os.RemoveAll(st)
	r = open(t, dir)
	defer r.Close()
	if s, err := ReadState(dir); err != nil || s.Sequence != 2 {
		t.Fatalf("state after the next Open: %+v, %v; want sequence 2", s, err)
	}
}

// TestTreeGuard: paths are added all or none; a clash names its reason; a
// repeated path is refused unless the guard was made to allow repeats.
func TestTreeGuard(t *testing.T) {
	g := NewTreeGuard(4, false)
	if err := g.Add("d/a", "d/a.sig"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		paths  []string
		reason string
	}{
		{[]string{"x/new", "D/A"}, "when case is ignored"},
		{[]string{"d"}, `is also a folder of "d/a"`},
		{[]string{"d/a/b"}, "inside the file"},
		{[]string{"d/a"}, "comes twice"},
	} {
		var pe *PathError
		if err := g.Add(c.paths...); !errors.As(err, &pe) || !strings.Contains(pe.Reason, c.reason) {
			t.Fatalf("Add(%v) = %v, want %q", c.paths, err, c.reason)
		}
	}
	// The refused Add took back x/new: adding it again is no repeat.
	if err := g.Add("x/new"); err != nil {
		t.Fatalf("after a refused Add: %v", err)
	}
	g = NewTreeGuard(4, true)
	if err := g.Add("d/a", "d/a"); err != nil {
		t.Fatalf("a repeat with Repeats: %v", err)
	}
}
