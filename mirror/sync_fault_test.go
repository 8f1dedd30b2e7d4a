package mirror

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/fetch"
	"github.com/mirror-tool/mirror/mirror/state"
	"github.com/mirror-tool/mirror/mirror/store"
)

// faultN serves a broken answer for the first n requests, then the file.
func (e *syncEnv) faultN(path string, n int32, broken func(w http.ResponseWriter, body []byte)) *atomic.Int32 {
	var count atomic.Int32
	fs := http.FileServer(http.Dir(e.up))
	e.fault(path, func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1) > n {
			fs.ServeHTTP(w, r)
			return
		}
		body, err := os.ReadFile(filepath.Join(e.up, filepath.FromSlash(strings.TrimPrefix(path, "/"))))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		broken(w, body)
	})
	return &count
}

// cut sends the headers of the whole body, half of it, and drops the
// connection.
func cut(w http.ResponseWriter, body []byte) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", len(body))
	buf.Write(body[:len(body)/2])
	buf.Flush()
}

// wrongLength announces more bytes than it sends, then closes.
func wrongLength(w http.ResponseWriter, body []byte) {
	hj := w.(http.Hijacker)
	conn, buf, _ := hj.Hijack()
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body)+100)
	buf.Write(body)
	buf.Flush()
}

func status500(w http.ResponseWriter, _ []byte) { http.Error(w, "overloaded", 500) }

// TestSyncFaults: cut connections, wrong lengths, 500s, a slow server and an
// endless body. Every bundle made holds exactly the signed content, and a
// file that never arrives fails the run without recording anything.
func TestSyncFaults(t *testing.T) {
	e := newSyncEnv(t)
	big := strings.Repeat("0123456789abcdef", 64<<10/16) // 64 KiB
	contents := map[string]string{"a/cut.tar.gz": "cut:" + big, "a/len.tar.gz": "len:" + big, "a/err.tar.gz": "err:" + big,
		"a/slow.tar.gz": "slow:" + big[:2000], "b/endless.tar.gz": "endless"}
	for name, c := range contents {
		signer := "rel-a"
		if strings.HasPrefix(name, "b/") {
			signer = "rel-b"
		}
		e.put(name, c, signer)
	}
	e.putRel("x.tar.gz", "x:"+big)
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)

	cuts := e.faultN("/tools/a/cut.tar.gz", 2, cut)
	lens := e.faultN("/tools/a/len.tar.gz", 1, wrongLength)
	errs := e.faultN("/tools/a/err.tar.gz", 2, status500)
	listCuts := e.faultN("/rel/v1/x.tar.gz", 1, cut)
	sigErrs := e.faultN("/tools/a/cut.tar.gz.minisig", 1, status500)
	e.faultN("/tools/a/slow.tar.gz", 1, func(w http.ResponseWriter, body []byte) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		for i := 0; i < len(body); i += 200 {
			w.Write(body[i:min(i+200, len(body))])
			w.(http.Flusher).Flush()
			time.Sleep(5 * time.Millisecond)
		}
	})
	e.fault("/tools/b/endless.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(big)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})

	// The bound comes from mirror.toml (max_file_size), as an operator sets it.
	cfgPath := e.cfgPath
	cfgText, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, append([]byte("max_file_size = \"1MiB\"\n"), cfgText...), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := e.sync(SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rej := rejectedOf(res)
	if len(rej) != 1 || !strings.Contains(rej["tools:b/endless.tar.gz"], "size limit") {
		t.Fatalf("rejected = %v", rej)
	}
	if cuts.Load() < 3 || lens.Load() < 2 || errs.Load() < 3 || listCuts.Load() < 2 || sigErrs.Load() < 2 {
		t.Fatalf("faults were not all exercised: cut %d, length %d, 500 %d, list cut %d, sig 500 %d", cuts.Load(), lens.Load(), errs.Load(), listCuts.Load(), sigErrs.Load())
	}
	m, blobs := e.openBundle(res.Bundle)
	tree := treeOf(m)
	for name, c := range contents {
		if name == "b/endless.tar.gz" {
			continue
		}
		if got := blobs[tree["tools/"+name]]; string(got) != c {
			t.Errorf("%s: bundle holds %d bytes, not the signed content", name, len(got))
		}
	}
	if string(blobs[tree["rel/v1/x.tar.gz"]]) != "x:"+big {
		t.Error("rel/v1/x.tar.gz: bundle does not hold the listed content")
	}
	if _, ok := tree["tools/b/endless.tar.gz"]; ok {
		t.Fatal("the endless file is in the bundle")
	}
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "state", PartialDir)); len(ents) != 0 {
		t.Errorf("partial files left: %v", ents)
	}
}

// TestSyncFailureRecordsNothing: a file that keeps failing fails the run (no
// bundle, state untouched); once the upstream recovers, the next run makes
// sequence 1.
func TestSyncFailureRecordsNothing(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/good.tar.gz", "good", "rel-a")
	e.put("a/bad.tar.gz", "flaky", "rel-a")
	e.put("b/other.tar.gz", "other", "rel-b")
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.faultN("/tools/a/bad.tar.gz", 1000, cut)
	_, err := e.sync(SyncOptions{})
	if !errors.Is(err, ErrSync) {
		t.Fatalf("sync with a dead file: %v, want ErrSync", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "bundles")); len(ents) != 0 {
		t.Fatalf("a failed run left %v", ents)
	}
	if st, err := state.Load(filepath.Join(e.dir, "state")); err != nil || st.Sequence != 0 || len(st.Shipped) != 0 {
		t.Fatalf("a failed run changed the state: %+v %v", st, err)
	}
	e.fault("/tools/a/bad.tar.gz", nil)
	res := e.mustSync(SyncOptions{})
	if res.Bundle == nil || res.Bundle.Sequence != 1 || res.Rejected != 0 {
		t.Fatalf("recovery run = %+v", res)
	}
	_, blobs := e.openBundle(res.Bundle)
	if string(blobs[sumOf("flaky")]) != "flaky" || string(blobs[sumOf("good")]) != "good" {
		t.Fatal("recovery bundle lacks the files")
	}
}

// TestSyncDamagedCache: a cached blob changed behind the store's back is
// never bundled: the bundle writer's hash check fails the run, the damaged
// copy is dropped, and the next run fetches and verifies it again.
func TestSyncDamagedCache(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one original", "rel-a")
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.mustSync(SyncOptions{})
	blob := e.cachedBlob("one original")
	os.Chmod(blob, 0o644)
	if err := os.WriteFile(blob, []byte("one DAMAGED!"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := e.sync(SyncOptions{Full: true})
	if !errors.Is(err, ErrSync) || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("full sync over a damaged cache: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "bundles")); len(ents) != 2 {
		t.Fatalf("bundles folder: %v", ents)
	}
	res := e.mustSync(SyncOptions{Full: true})
	_, blobs := e.openBundle(res.Bundle)
	if string(blobs[sumOf("one original")]) != "one original" || res.Bundle.Sequence != 2 {
		t.Fatalf("after the damage: sequence %d, blob %q", res.Bundle.Sequence, blobs[sumOf("one original")])
	}
}

// Cache blobs are adopted without an fsync each and made durable by one
// syncfs before the bundle and the state. A run that died before that may
// leave a blob torn under its name (its data never reached the disk) and the
// batch marker: the next run re-hashes that batch's blobs, drops the torn
// one and fetches it again, instead of trusting it (the remembered verdict
// would skip the signature check, and the bundle writer would fail on it).
func TestSyncRecoversTornCache(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one original", "rel-a")
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.mustSync(SyncOptions{})
	cache := filepath.Join(e.dir, "state", CacheDir)
	if _, err := os.Lstat(filepath.Join(cache, store.UnsyncedMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a completed run left the batch marker: %v", err)
	}
	// The crash: the marker of the batch is on disk, one blob is torn.
	blob := filepath.Join(cache, "sha256", sumOf("one original")[:2], sumOf("one original"))
	os.Chmod(blob, 0o644)
	if err := os.Truncate(blob, 3); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, store.UnsyncedMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := e.mustSync(SyncOptions{Full: true})
	_, blobs := e.openBundle(res.Bundle)
	if string(blobs[sumOf("one original")]) != "one original" || res.Bundle.Sequence != 2 {
		t.Fatalf("after the crash: sequence %d, blob %q", res.Bundle.Sequence, blobs[sumOf("one original")])
	}
	fetched := false
	for _, p := range res.Packages {
		if strings.HasSuffix(p.Name, "one.tar.gz") {
			fetched = p.Fetched
		}
	}
	if !fetched {
		t.Fatalf("the torn blob's package was not fetched again: %+v", res.Packages)
	}
	if _, err := os.Lstat(filepath.Join(cache, store.UnsyncedMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker left after recovery: %v", err)
	}
}

// TestSyncSweepsStrayPartials: partial downloads of URLs that are not in the
// package set (an upstream that renames files and cuts their downloads)
// are removed after a successful run, so they cannot fill the state folder;
// a failed run keeps every partial for the next run to resume.
func TestSyncSweepsStrayPartials(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/good.tar.gz", "good", "rel-a")
	e.put("a/bad.tar.gz", "flaky", "rel-a")
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	partial := filepath.Join(e.dir, "state", PartialDir)
	if err := os.MkdirAll(partial, 0o755); err != nil {
		t.Fatal(err)
	}
	strays := []string{sumOf("gone 1")[:40], sumOf("gone 2")[:40], sumOf("gone 2")[:40] + fetch.MetaSuffix}
	for _, n := range strays {
		if err := os.WriteFile(filepath.Join(partial, n), []byte("stale bytes"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.faultN("/tools/a/bad.tar.gz", 1000, cut)
	if _, err := e.sync(SyncOptions{}); !errors.Is(err, ErrSync) {
		t.Fatalf("run with a dead file: %v, want ErrSync", err)
	}
	for _, n := range strays {
		if _, err := os.Stat(filepath.Join(partial, n)); err != nil {
			t.Fatalf("a failed run removed partial %s: %v", n, err)
		}
	}
	e.fault("/tools/a/bad.tar.gz", nil)
	e.mustSync(SyncOptions{})
	if ents, _ := os.ReadDir(partial); len(ents) != 0 {
		t.Fatalf("after a successful run the partial folder holds %d entries", len(ents))
	}
}

// TestSyncLinkInCache: a symbolic link put in the cache in place of a blob
// (pointing at a file with the right content, even) is never followed into
// a bundle: the run fails, the link is removed, and the next run fetches
// and verifies the file again.
func TestSyncLinkInCache(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one original", "rel-a")
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.mustSync(SyncOptions{})
	blob := e.cachedBlob("one original")
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, []byte("one original"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(blob)
	if err := os.Symlink(target, blob); err != nil {
		t.Fatal(err)
	}
	_, err := e.sync(SyncOptions{Full: true})
	if !errors.Is(err, ErrSync) || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("full sync over a link in the cache: %v", err)
	}
	if _, err := os.Lstat(blob); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the link is still in the cache: %v", err)
	}
	res := e.mustSync(SyncOptions{Full: true})
	_, blobs := e.openBundle(res.Bundle)
	if string(blobs[sumOf("one original")]) != "one original" {
		t.Fatal("the next run did not bundle the file")
	}
	if fi, err := os.Lstat(blob); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("cache entry after the next run: %v, %v", fi, err)
	}
}
