package fetch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
)

// TestStaleSideFileNoSplice: a side file written for an answer whose body
// never came (ETag "A") must not vouch for the bytes of a later answer
// without validators: the resume after that answer is cut must not join
// the two versions.
func TestStaleSideFileNoSplice(t *testing.T) {
	const size = 2 << 20 // over eagerMeta: the side file is written before the body
	vA := payload(size, 101)
	vB := payload(size, 202)
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch log.add(r) {
		case 1: // version A, ETag "A": headers only, then the connection ends
			w.Header().Set("ETag", `"A"`)
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.WriteHeader(http.StatusOK)
			return
		case 2: // version B from a backend without validators, cut at 1 MiB
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.WriteHeader(http.StatusOK)
			w.Write(vB[:1<<20])
			return
		default: // version A again, If-Range honoured correctly
			serve(w, r, `"A"`, vA)
		}
	}))
	defer srv.Close()
	dst := dstPath(t)
	res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<30, -1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < log.n(); i++ {
		h := log.get(i)
		t.Logf("request %d: Range %q If-Range %q", i+1, h.Get("Range"), h.Get("If-Range"))
	}
	if res.SHA256 != sumOf(vA) && res.SHA256 != sumOf(vB) {
		got, _ := os.ReadFile(dst)
		t.Fatalf("Download reported success with a splice of two versions: first MiB is B's %v, rest is A's %v",
			string(got[:1<<20]) == string(vB[:1<<20]), string(got[1<<20:]) == string(vA[1<<20:]))
	}
}

// TestUnsatisfiableRangeChecksValidators: a 416 whose size equals the
// partial is "the partial is the whole file" only when the answer's ETag
// and Last-Modified, and the recorded total, agree with the side file: a
// server that ignores If-Range and now serves a shorter new version must
// not make the old version's prefix the result.
func TestUnsatisfiableRangeChecksValidators(t *testing.T) {
	v1 := payload(2000, 301)
	v2 := payload(1000, 302) // the new release: exactly as long as the partial
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := log.add(r)
		if n == 1 {
			cut(t, w, `"v1"`, v1, 1000)
			return
		}
		// v2 now; this server knows Range but not If-Range.
		w.Header().Set("ETag", `"v2"`)
		if rg := r.Header.Get("Range"); rg == "bytes=1000-" {
			w.Header().Set("Content-Range", "bytes */1000")
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		w.Header().Set("Content-Length", "1000")
		w.Write(v2)
	}))
	defer srv.Close()
	dst := dstPath(t)
	res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	switch res.SHA256 {
	case sumOf(v2):
	case sumOf(v1[:1000]):
		t.Fatalf("Download reported the first 1000 bytes of the old version (ETag \"v1\", 2000 bytes) as the whole file; the server's 416 named ETag \"v2\"")
	default:
		t.Fatalf("unexpected result %+v", res)
	}
}

// TestGetAnnouncedSizeNotAllocated: a server that announces the limit
// (16 MiB) and then sends a few bytes and hangs up makes Get set aside no
// more than getPrealloc per attempt, not the size it announced.
func TestGetAnnouncedSizeNotAllocated(t *testing.T) {
	const announced = 16 << 20
	var attempts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(announced))
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("a few bytes"))
	}))
	defer srv.Close()
	opt := testOptions()
	opt.Retries = 0
	c := newClient(t, opt)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, _, _, err := c.Get(context.Background(), srv.URL, announced, Validators{}); err == nil {
		t.Fatal("a body cut after a few bytes was taken")
	}
	runtime.ReadMemStats(&after)
	// Half the announced size per attempt: the allocations of the client
	// and the test server (more under -race) stay far below it.
	if got, n := after.TotalAlloc-before.TotalAlloc, attempts.Load(); got >= uint64(n)*announced/2 {
		t.Fatalf("Get allocated %d bytes in %d attempts for a body of 11 bytes announced as %d", got, n, announced)
	}
}
