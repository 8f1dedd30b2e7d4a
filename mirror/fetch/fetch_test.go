package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testOptions keep every fault test fast: short backoff, short stall window.
func testOptions() Options {
	return Options{
		Timeout:      2 * time.Second,
		Retries:      4,
		MinBackoff:   time.Millisecond,
		MaxBackoff:   5 * time.Millisecond,
		StallTimeout: 300 * time.Millisecond,
	}
}

func newClient(t *testing.T, opt Options) *Client {
	t.Helper()
	c, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// reqLog records the requests a test server saw.
type reqLog struct {
	mu   sync.Mutex
	reqs []http.Header
}

func (l *reqLog) add(r *http.Request) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r.Header.Clone())
	return len(l.reqs)
}

func (l *reqLog) n() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

func (l *reqLog) get(i int) http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reqs[i]
}

// serve answers with content the way a correct static server does: ETag,
// Range, If-Range, conditional requests (http.ServeContent).
func serve(w http.ResponseWriter, r *http.Request, etag string, content []byte) {
	w.Header().Set("ETag", etag)
	http.ServeContent(w, r, "f", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), bytes.NewReader(content))
}

// cut sends the headers of a full answer and the first n bytes, then closes
// the connection under the client (hijack and close).
func cut(t *testing.T, w http.ResponseWriter, etag string, content []byte, n int) {
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Length", strconv.Itoa(len(content)))
	w.WriteHeader(http.StatusOK)
	w.Write(content[:n])
	w.(http.Flusher).Flush()
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	buf.Flush()
	conn.Close()
}

func dstPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "part")
}

// checkFile asserts that a download reported good is exactly content.
func checkFile(t *testing.T, dst string, res Result, content []byte) {
	t.Helper()
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("file on disk differs from the served content (%d vs %d bytes)", len(got), len(content))
	}
	if res.SHA256 != sumOf(content) || res.Size != int64(len(content)) {
		t.Fatalf("result %+v, want %s %d", res, sumOf(content), len(content))
	}
	if _, err := os.Stat(dst + MetaSuffix); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("side file left after success: %v", err)
	}
}

func TestDownloadPlain(t *testing.T) {
	content := payload(300_000, 1)
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		serve(w, r, `"v1"`, content)
	}))
	defer srv.Close()
	var progress atomic.Int64
	opt := testOptions()
	opt.Progress = func(n int64) { progress.Add(n) }
	opt.UserAgent = "mirror-test/1"
	c := newClient(t, opt)
	dst := dstPath(t)
	res, err := c.Download(context.Background(), srv.URL+"/f", dst, 1<<20, int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
	if progress.Load() != int64(len(content)) {
		t.Fatalf("progress reported %d bytes, want %d", progress.Load(), len(content))
	}
	h := log.get(0)
	if h.Get("User-Agent") != "mirror-test/1" || h.Get("Range") != "" || h.Get("Accept-Encoding") != "" {
		t.Fatalf("request headers %v", h)
	}
	// Unknown size works too, and the exact limit is allowed.
	res, err = c.Download(context.Background(), srv.URL+"/f", dstPath(t), int64(len(content)), -1)
	if err != nil || res.SHA256 != sumOf(content) {
		t.Fatalf("unknown size: %+v %v", res, err)
	}
}

func TestDefaultUserAgent(t *testing.T) {
	var ua string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ua = r.UserAgent()
		w.Write([]byte("x"))
	}))
	defer srv.Close()
	c := newClient(t, Options{})
	if _, _, _, err := c.Get(context.Background(), srv.URL, 10, Validators{}); err != nil {
		t.Fatal(err)
	}
	if ua != "mirror/"+Version {
		t.Fatalf("User-Agent %q", ua)
	}
}

func TestDownloadResumesAfterCut(t *testing.T) {
	content := payload(500_000, 2)
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			cut(t, w, `"v1"`, content, 200_000)
			return
		}
		serve(w, r, `"v1"`, content)
	}))
	defer srv.Close()
	c := newClient(t, testOptions())
	dst := dstPath(t)
	res, err := c.Download(context.Background(), srv.URL+"/f", dst, 1<<20, int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
	if log.n() != 2 {
		t.Fatalf("%d requests, want 2", log.n())
	}
	h := log.get(1)
	if h.Get("Range") != "bytes=200000-" || h.Get("If-Range") != `"v1"` {
		t.Fatalf("resume request: Range %q If-Range %q", h.Get("Range"), h.Get("If-Range"))
	}
}

// A partial left by an earlier run (the process gave up or was killed) is
// resumed by the next Download of the same URL, and re-hashed.
func TestDownloadResumesAcrossCalls(t *testing.T) {
	content := payload(400_000, 3)
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			cut(t, w, `"v1"`, content, 123_457)
			return
		}
		serve(w, r, `"v1"`, content)
	}))
	defer srv.Close()
	opt := testOptions()
	opt.Retries = -1 // no retry: the first call fails
	c := newClient(t, opt)
	dst := dstPath(t)
	if _, err := c.Download(context.Background(), srv.URL+"/f", dst, 1<<20, -1); err == nil {
		t.Fatal("cut download reported success")
	}
	if fi, err := os.Stat(dst); err != nil || fi.Size() != 123_457 {
		t.Fatalf("partial: %v %v", fi, err)
	}
	res, err := c.Download(context.Background(), srv.URL+"/f", dst, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
	if got := log.get(1).Get("Range"); got != "bytes=123457-" {
		t.Fatalf("second call Range %q", got)
	}
	// A partial of another URL is not resumed.
	other := payload(1000, 4)
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			t.Errorf("resumed a partial of another URL")
		}
		serve(w, r, `"o"`, other)
	}))
	defer srv2.Close()
	os.WriteFile(dst, content[:500], 0o644)
	os.WriteFile(dst+MetaSuffix, []byte(`{"url":"`+srv.URL+`/f","etag":"\"v1\"","size":400000}`), 0o644)
	res, err = c.Download(context.Background(), srv2.URL+"/f", dst, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, other)
}

func TestDownloadPartialWithoutSideFileRestarts(t *testing.T) {
	content := payload(10_000, 5)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			t.Errorf("resumed a partial of unknown origin")
		}
		serve(w, r, `"v"`, content)
	}))
	defer srv.Close()
	dst := dstPath(t)
	os.WriteFile(dst, []byte("stale bytes of who knows what"), 0o644)
	res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
}

// A complete partial (left when a run died after the last byte) is
// confirmed by a 416 to the range request, without downloading again.
func TestDownloadCompletePartial(t *testing.T) {
	content := payload(10_000, 6)
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		serve(w, r, `"v"`, content)
	}))
	defer srv.Close()
	dst := dstPath(t)
	os.WriteFile(dst, content, 0o644)
	os.WriteFile(dst+MetaSuffix, []byte(`{"url":"`+srv.URL+`","etag":"\"v\"","size":10000}`), 0o644)
	res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
	if log.n() != 1 || log.get(0).Get("Range") != "bytes=10000-" {
		t.Fatalf("requests %d, Range %q", log.n(), log.get(0).Get("Range"))
	}
}

func TestDownloadTruncatedBody(t *testing.T) {
	content := payload(100_000, 7)
	t.Run("content-length larger than body, then resume", func(t *testing.T) {
		var log reqLog
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if log.add(r) == 1 {
				// Announce the full length, send 60%, return: the
				// server must close the connection.
				w.Header().Set("ETag", `"v"`)
				w.Header().Set("Content-Length", strconv.Itoa(len(content)))
				w.Write(content[:60_000])
				return
			}
			serve(w, r, `"v"`, content)
		}))
		defer srv.Close()
		dst := dstPath(t)
		res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, -1)
		if err != nil {
			t.Fatal(err)
		}
		checkFile(t, dst, res, content)
		if got := log.get(1).Get("Range"); got != "bytes=60000-" {
			t.Fatalf("Range %q", got)
		}
	})
	t.Run("content-length smaller than the file, size known", func(t *testing.T) {
		var log reqLog
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.add(r)
			// Always lies: says and sends 90 KB of a 100 KB file.
			w.Header().Set("Content-Length", "90000")
			w.Write(content[:90_000])
		}))
		defer srv.Close()
		dst := dstPath(t)
		res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, int64(len(content)))
		if !errors.Is(err, ErrSize) {
			t.Fatalf("short file: %+v, %v; want ErrSize", res, err)
		}
		if res != (Result{}) {
			t.Fatalf("result %+v returned with an error", res)
		}
		if log.n() != 5 {
			t.Fatalf("%d requests, want 1 + 4 retries", log.n())
		}
	})
	t.Run("body longer than the expected size", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(content) // chunked, no length
		}))
		defer srv.Close()
		_, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dstPath(t), 1<<20, 50_000)
		if !errors.Is(err, ErrSize) {
			t.Fatalf("long file: %v; want ErrSize", err)
		}
	})
}

func TestDownloadServerErrorsThenSuccess(t *testing.T) {
	content := payload(20_000, 8)
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch log.add(r) {
		case 1:
			http.Error(w, "boom", http.StatusInternalServerError)
		case 2:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 3:
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case 4:
			http.Error(w, "request timeout", http.StatusRequestTimeout)
		default:
			serve(w, r, `"v"`, content)
		}
	}))
	defer srv.Close()
	dst := dstPath(t)
	res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
	if log.n() != 5 {
		t.Fatalf("%d requests, want 5", log.n())
	}
}

func TestDownloadGivesUpAfterRetries(t *testing.T) {
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	opt := testOptions()
	opt.Retries = 2
	_, err := newClient(t, opt).Download(context.Background(), srv.URL+"/x.tar.gz", dstPath(t), 1<<20, -1)
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusBadGateway {
		t.Fatalf("err = %v", err)
	}
	var fe *Error
	if !errors.As(err, &fe) || fe.Attempts != 3 || !strings.Contains(err.Error(), "/x.tar.gz") {
		t.Fatalf("err = %#v", err)
	}
	if log.n() != 3 {
		t.Fatalf("%d requests, want 3", log.n())
	}
}

func TestDownloadClientErrorsNotRetried(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusGone, http.StatusForbidden, http.StatusUnauthorized, http.StatusBadRequest} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var log reqLog
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				log.add(r)
				http.Error(w, "no", status)
			}))
			defer srv.Close()
			_, err := newClient(t, testOptions()).Download(context.Background(), srv.URL+"/missing", dstPath(t), 1<<20, -1)
			var he *HTTPError
			if !errors.As(err, &he) || he.Status != status || he.URL != srv.URL+"/missing" {
				t.Fatalf("err = %v", err)
			}
			notFound := status == http.StatusNotFound || status == http.StatusGone
			if errors.Is(err, ErrNotFound) != notFound {
				t.Fatalf("errors.Is(ErrNotFound) = %v for %d", !notFound, status)
			}
			if log.n() != 1 {
				t.Fatalf("%d requests, want 1 (no retry)", log.n())
			}
		})
	}
}

func TestDownloadStalledServer(t *testing.T) {
	content := payload(50_000, 9)
	for _, tc := range []struct {
		name string
		send func(w http.ResponseWriter, r *http.Request)
	}{
		{"silent after headers", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			w.Write(content[:1000])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}},
		{"slow drip", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			for i := 0; ; i++ {
				if _, err := w.Write(content[i : i+1]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}},
		{"no headers", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log reqLog
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				log.add(r)
				tc.send(w, r)
			}))
			defer srv.Close()
			opt := testOptions()
			opt.Retries = 1
			opt.Timeout = 300 * time.Millisecond
			opt.StallTimeout = 150 * time.Millisecond
			dst := dstPath(t)
			res, err := newClient(t, opt).Download(context.Background(), srv.URL, dst, 1<<20, -1)
			if err == nil {
				t.Fatalf("stalled download reported good: %+v", res)
			}
			if tc.name == "no headers" {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want a timeout", err)
				}
			} else if !errors.Is(err, ErrStalled) {
				t.Fatalf("err = %v, want ErrStalled", err)
			}
			if log.n() < 2 {
				t.Fatalf("%d requests: a stall must be retried", log.n())
			}
		})
	}
}

func TestDownloadEndlessServer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		length string
	}{{"no content-length", ""}, {"content-length over the limit", "999999999"}} {
		t.Run(tc.name, func(t *testing.T) {
			var log reqLog
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				log.add(r)
				if tc.length != "" {
					w.Header().Set("Content-Length", tc.length)
				}
				buf := make([]byte, 32<<10)
				for {
					if _, err := w.Write(buf); err != nil {
						return
					}
				}
			}))
			defer srv.Close()
			dst := dstPath(t)
			_, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, -1)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v", err)
			}
			if log.n() != 1 {
				t.Fatalf("%d requests: too large is not retried", log.n())
			}
			if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("oversized partial left behind: %v", err)
			}
		})
	}
	// The limit is exact: maxSize bytes pass, maxSize+1 do not.
	content := payload(4096, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(content) // chunked: the client only learns the size by reading
	}))
	defer srv.Close()
	c := newClient(t, testOptions())
	if _, err := c.Download(context.Background(), srv.URL, dstPath(t), 4096, -1); err != nil {
		t.Fatalf("exactly the limit: %v", err)
	}
	if _, err := c.Download(context.Background(), srv.URL, dstPath(t), 4095, -1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one over the limit: %v", err)
	}
	if _, err := c.Download(context.Background(), srv.URL, dstPath(t), 4095, 4096); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("expected size over the limit: %v", err)
	}
}

// A server that ignores Range answers 200 with the whole file: the partial
// restarts from zero instead of appending the whole file to the prefix.
func TestDownloadServerIgnoresRange(t *testing.T) {
	content := payload(200_000, 11)
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			cut(t, w, `"v"`, content, 70_000)
			return
		}
		w.Header().Set("ETag", `"v"`)
		w.Write(content) // 200, Range ignored
	}))
	defer srv.Close()
	dst := dstPath(t)
	res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
	if log.get(1).Get("Range") == "" {
		t.Fatal("second request did not try to resume")
	}
}

// The file changes between attempts: the resume must not splice the new
// version onto the old prefix.
func TestDownloadFileChangedBetweenAttempts(t *testing.T) {
	v1 := payload(100_000, 12)
	v2 := payload(100_000, 13) // same size, other bytes
	t.Run("server honours If-Range", func(t *testing.T) {
		var log reqLog
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if log.add(r) == 1 {
				cut(t, w, `"v1"`, v1, 40_000)
				return
			}
			serve(w, r, `"v2"`, v2)
		}))
		defer srv.Close()
		dst := dstPath(t)
		res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, int64(len(v2)))
		if err != nil {
			t.Fatal(err)
		}
		checkFile(t, dst, res, v2)
		if got := log.get(1).Get("If-Range"); got != `"v1"` {
			t.Fatalf("If-Range %q", got)
		}
	})
	t.Run("server ignores If-Range but shows the new ETag", func(t *testing.T) {
		var log reqLog
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if log.add(r) == 1 {
				cut(t, w, `"v1"`, v1, 40_000)
				return
			}
			r.Header.Del("If-Range") // a broken server
			serve(w, r, `"v2"`, v2)
		}))
		defer srv.Close()
		dst := dstPath(t)
		res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, int64(len(v2)))
		if err != nil {
			t.Fatal(err)
		}
		checkFile(t, dst, res, v2)
	})
	t.Run("last-modified only", func(t *testing.T) {
		var log reqLog
		t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		t2 := t1.Add(time.Hour)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if log.add(r) == 1 {
				w.Header().Set("Last-Modified", t1.Format(http.TimeFormat))
				cut(t, w, "", v1, 40_000)
				return
			}
			http.ServeContent(w, r, "f", t2, bytes.NewReader(v2))
		}))
		defer srv.Close()
		dst := dstPath(t)
		res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, -1)
		if err != nil {
			t.Fatal(err)
		}
		checkFile(t, dst, res, v2)
		if got := log.get(1).Get("If-Range"); got != t1.Format(http.TimeFormat) {
			t.Fatalf("If-Range %q", got)
		}
	})
}

// A 206 that does not continue where the partial ends is not spliced.
func TestDownloadWrongRangeAnswer(t *testing.T) {
	content := payload(100_000, 14)
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch log.add(r) {
		case 1:
			cut(t, w, `"v"`, content, 30_000)
		case 2:
			// Answers a range starting at 10, not 30000.
			w.Header().Set("ETag", `"v"`)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 10-%d/%d", len(content)-1, len(content)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(content[10:])
		default:
			serve(w, r, `"v"`, content)
		}
	}))
	defer srv.Close()
	dst := dstPath(t)
	res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
	if got := log.get(2).Get("Range"); got != "" {
		t.Fatalf("after a wrong range the download must restart, sent Range %q", got)
	}
}

// caFileOf writes the certificate of a TLS test server as a CA file.
func caFileOf(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestDownloadTLSWithCAFile(t *testing.T) {
	content := payload(50_000, 15)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, `"v"`, content)
	}))
	defer srv.Close()
	ca := caFileOf(t, srv)
	opt := testOptions()
	opt.CAFile = ca
	dst := dstPath(t)
	res, err := newClient(t, opt).Download(context.Background(), srv.URL+"/f", dst, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)

	// Without the CA file the server is not trusted, and that is not retried.
	var fe *Error
	_, err = newClient(t, testOptions()).Download(context.Background(), srv.URL+"/f", dstPath(t), 1<<20, -1)
	if err == nil || !errors.As(err, &fe) || fe.Attempts != 1 {
		t.Fatalf("untrusted server: %v", err)
	}
	// A CA file without a certificate is an error at New.
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o644)
	opt.CAFile = bad
	if _, err := New(opt); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad CA file: %v", err)
	}
	opt.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := New(opt); err == nil {
		t.Fatal("missing CA file accepted")
	}
}

func TestRedirects(t *testing.T) {
	content := []byte("here")
	tlsSrv := httptest.NewTLSServer(nil)
	defer tlsSrv.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/file":
			serve(w, r, `"v"`, content)
		case strings.HasPrefix(r.URL.Path, "/hop/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
			if n == 0 {
				http.Redirect(w, r, "/file", http.StatusFound)
				return
			}
			http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusFound)
		case r.URL.Path == "/ftp":
			http.Redirect(w, r, "ftp://example.org/x", http.StatusFound)
		}
	}))
	defer plain.Close()
	tlsSrv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/file", http.StatusFound) // https -> http
	})
	opt := testOptions()
	opt.Transport = tlsSrv.Client().Transport
	c := newClient(t, opt)
	ctx := context.Background()
	if _, err := c.Download(ctx, plain.URL+"/hop/4", dstPath(t), 100, -1); err != nil {
		t.Fatalf("5 redirects: %v", err)
	}
	if _, err := c.Download(ctx, plain.URL+"/hop/5", dstPath(t), 100, -1); !errors.Is(err, ErrRedirect) {
		t.Fatalf("6 redirects: %v", err)
	}
	if _, _, _, err := c.Get(ctx, tlsSrv.URL+"/x", 100, Validators{}); !errors.Is(err, ErrRedirect) {
		t.Fatalf("https to http: %v", err)
	}
	if _, _, _, err := c.Get(ctx, plain.URL+"/ftp", 100, Validators{}); !errors.Is(err, ErrRedirect) {
		t.Fatalf("redirect to ftp: %v", err)
	}
	for _, u := range []string{"ftp://example.org/x", "file:///etc/passwd", "/relative", "http://"} {
		if _, err := c.Download(ctx, u, dstPath(t), 100, -1); err == nil {
			t.Errorf("Download(%q) accepted", u)
		}
		if _, _, _, err := c.Get(ctx, u, 100, Validators{}); err == nil {
			t.Errorf("Get(%q) accepted", u)
		}
	}
}

func TestGetConditional(t *testing.T) {
	index := []byte("Packages index v1\n")
	etag := `"idx1"`
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		serve(w, r, etag, index)
	}))
	defer srv.Close()
	c := newClient(t, testOptions())
	ctx := context.Background()
	body, v, nm, err := c.Get(ctx, srv.URL+"/idx", 1<<10, Validators{})
	if err != nil || nm || !bytes.Equal(body, index) {
		t.Fatalf("first Get: %q %v %v", body, nm, err)
	}
	if v.ETag != etag || v.LastModified == "" {
		t.Fatalf("validators %+v", v)
	}
	body, v2, nm, err := c.Get(ctx, srv.URL+"/idx", 1<<10, v)
	if err != nil || !nm || body != nil {
		t.Fatalf("conditional Get: %q %v %v", body, nm, err)
	}
	if v2 != v {
		t.Fatalf("validators after 304: %+v, want %+v", v2, v)
	}
	h := log.get(1)
	if h.Get("If-None-Match") != etag || h.Get("If-Modified-Since") != v.LastModified {
		t.Fatalf("conditional headers %v", h)
	}
	// The index changes: a full answer again.
	index, etag = []byte("Packages index v2, longer\n"), `"idx2"`
	body, v3, nm, err := c.Get(ctx, srv.URL+"/idx", 1<<10, v)
	if err != nil || nm || !bytes.Equal(body, index) || v3.ETag != etag {
		t.Fatalf("changed: %q %v %+v %v", body, nm, v3, err)
	}
}

func TestGetBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/exact" {
			w.Write(bytes.Repeat([]byte("e"), 100))
			return
		}
		buf := make([]byte, 8<<10)
		for {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c := newClient(t, testOptions())
	body, _, _, err := c.Get(context.Background(), srv.URL+"/endless", 1<<20, Validators{})
	if !errors.Is(err, ErrTooLarge) || body != nil {
		t.Fatalf("endless Get: %d bytes, %v", len(body), err)
	}
	if body, _, _, err := c.Get(context.Background(), srv.URL+"/exact", 100, Validators{}); err != nil || len(body) != 100 {
		t.Fatalf("exact limit: %d %v", len(body), err)
	}
	if body, _, _, err := c.Get(context.Background(), srv.URL+"/exact", 99, Validators{}); !errors.Is(err, ErrTooLarge) || body != nil {
		t.Fatalf("one over: %d %v", len(body), err)
	}
}

func TestGetRetriesAndNotFound(t *testing.T) {
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := log.add(r)
		switch {
		case r.URL.Path == "/missing":
			http.NotFound(w, r)
		case n == 1:
			http.Error(w, "x", http.StatusInternalServerError)
		case n == 2:
			// A truncated body: announce 100, send 10, hang up.
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("0123456789"))
		default:
			w.Write(bytes.Repeat([]byte("a"), 100))
		}
	}))
	defer srv.Close()
	c := newClient(t, testOptions())
	body, _, _, err := c.Get(context.Background(), srv.URL+"/doc", 1<<10, Validators{})
	if err != nil || len(body) != 100 || log.n() != 3 {
		t.Fatalf("Get: %d bytes, %v after %d requests", len(body), err, log.n())
	}
	before := log.n()
	_, _, _, err = c.Get(context.Background(), srv.URL+"/missing", 1<<10, Validators{})
	if !errors.Is(err, ErrNotFound) || log.n() != before+1 {
		t.Fatalf("404: %v after %d requests", err, log.n()-before)
	}
}

func TestCancelStopsRetries(t *testing.T) {
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		http.Error(w, "x", http.StatusInternalServerError)
	}))
	defer srv.Close()
	opt := testOptions()
	opt.MinBackoff, opt.MaxBackoff = time.Hour, time.Hour
	c := newClient(t, opt)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := c.Download(ctx, srv.URL, dstPath(t), 100, -1)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestBackoff(t *testing.T) {
	c := newClient(t, Options{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	for n := 1; n <= 10; n++ {
		window := min(100*time.Millisecond<<(n-1), time.Second)
		for i := 0; i < 50; i++ {
			if d := c.backoff(n, 0); d < 0 || d > window {
				t.Fatalf("backoff(%d) = %v, outside [0, %v]", n, d, window)
			}
		}
	}
	if d := c.backoff(1, 5*time.Second); d != time.Second {
		t.Fatalf("Retry-After over MaxBackoff: %v", d)
	}
	if d := c.backoff(1, 300*time.Millisecond); d != 300*time.Millisecond {
		t.Fatalf("Retry-After: %v", d)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "7": 7 * time.Second, "-3": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 10-19/*", 10, 19, -1, true},
		{"bytes 10-9/100", 0, 0, 0, false},
		{"bytes 0-100/100", 0, 0, 0, false},
		{"bytes -1-5/10", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes 0-1", 0, 0, 0, false},
		{"bytes */100", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		f, l, s, ok := parseContentRange(tc.in)
		if ok != tc.ok || f != tc.first || l != tc.last || s != tc.total {
			t.Errorf("parseContentRange(%q) = %d %d %d %v", tc.in, f, l, s, ok)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	seeds := []string{"bytes 10-19/*", "bytes 0-0/1",
		"bytes 9223372036854775806-9223372036854775806/9223372036854775807", "bytes 1-2/3/4", " bytes 0-1/2 "}
	// Real answers: what Go's static file server sends to range requests,
	// satisfiable (206) and not (416).
	content := payload(1000, 20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, `"s"`, content)
	}))
	defer srv.Close()
	for _, rng := range []string{"bytes=0-", "bytes=10-19", "bytes=999-", "bytes=-5", "bytes=1000-", "bytes=5000-"} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Range", rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			f.Fatal(err)
		}
		resp.Body.Close()
		if cr := resp.Header.Get("Content-Range"); cr != "" {
			seeds = append(seeds, cr)
		}
	}
	if len(seeds) < 10 {
		f.Fatalf("only %d seeds: the server's Content-Range answers are missing", len(seeds))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		first, last, size, ok := parseContentRange(in)
		if !ok {
			if first != 0 || last != 0 || size != 0 {
				t.Fatalf("values returned on error: %d %d %d", first, last, size)
			}
		} else {
			if first < 0 || last < first || (size != -1 && size <= last) {
				t.Fatalf("inconsistent range %d-%d/%d from %q", first, last, size, in)
			}
			total := "*"
			if size >= 0 {
				total = strconv.FormatInt(size, 10)
			}
			f2, l2, s2, ok2 := parseContentRange(fmt.Sprintf("bytes %d-%d/%s", first, last, total))
			if !ok2 || f2 != first || l2 != last || s2 != size {
				t.Fatalf("round trip of %q failed", in)
			}
		}
		n, ok := parseUnsatisfiedRange(in)
		if ok {
			if n < 0 {
				t.Fatalf("negative size from %q", in)
			}
			if n2, ok2 := parseUnsatisfiedRange("bytes */" + strconv.FormatInt(n, 10)); !ok2 || n2 != n {
				t.Fatalf("round trip of %q failed", in)
			}
		} else if n != 0 {
			t.Fatalf("value returned on error")
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seeds := []string{"0", "120", "Wed, 21 Oct 2026 07:28:00 GMT", "-1", "99999999999999999999", ""}
	if len(seeds) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if d := parseRetryAfter(in, now); d < 0 {
			t.Fatalf("negative delay %v from %q", d, in)
		}
	})
}

func TestSideFileIgnoredWhenGarbage(t *testing.T) {
	content := payload(5000, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			t.Errorf("resumed with a torn side file")
		}
		serve(w, r, `"v"`, content)
	}))
	defer srv.Close()
	dst := dstPath(t)
	os.WriteFile(dst, content[:100], 0o644)
	os.WriteFile(dst+MetaSuffix, []byte(`{"url":"`+srv.URL), 0o644) // torn
	res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
}

func TestErrorsHidePasswords(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1) + "/f"
	_, err := newClient(t, testOptions()).Download(context.Background(), u, dstPath(t), 100, -1)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "user") {
		t.Fatalf("message %v", err)
	}
}

// TestMain lets the test binary act as a downloader that gets killed (see
// TestDownloadResumesAfterKill).
func TestMain(m *testing.M) {
	if u := os.Getenv("MIRROR_FETCH_HELPER_URL"); u != "" {
		c, err := New(testOptions())
		var res Result
		if err == nil {
			res, err = c.Download(context.Background(), u, os.Getenv("MIRROR_FETCH_HELPER_DST"), 1<<30, -1)
		}
		if err != nil {
			fmt.Println("helper failed:", err)
			os.Exit(1)
		}
		fmt.Printf("sha256=%s\n", res.SHA256)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A process killed in the middle of a large download leaves a partial that
// the next run resumes (and does not splice if the file changed).
func TestDownloadResumesAfterKill(t *testing.T) {
	content := payload(3<<20, 17)
	half := len(content) / 2
	var log reqLog
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			w.Header().Set("ETag", `"big"`)
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			w.Write(content[:half])
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		serve(w, r, `"big"`, content)
	}))
	defer srv.Close()
	defer close(release)
	dst := dstPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MIRROR_FETCH_HELPER_URL="+srv.URL+"/big", "MIRROR_FETCH_HELPER_DST="+dst)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if fi, err := os.Stat(dst); err == nil && fi.Size() == int64(half) {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("helper never wrote the first half")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill() // SIGKILL: no cleanup, no deferred side file
	cmd.Wait()
	res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL+"/big", dst, 1<<30, -1)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
	if got := log.get(1).Get("Range"); got != fmt.Sprintf("bytes=%d-", half) {
		t.Fatalf("after the kill: Range %q, want a resume at %d", got, half)
	}
}

// Without a validator a resume cannot be guarded: restart from zero.
func TestDownloadNoValidatorsRestarts(t *testing.T) {
	content := payload(200_000, 18)
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			w.Write(content[:100_000])
			return // cut: fewer bytes than announced
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.Write(content)
	}))
	defer srv.Close()
	dst := dstPath(t)
	res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
	if got := log.get(1).Get("Range"); got != "" {
		t.Fatalf("resumed without a validator: Range %q", got)
	}
	// A weak ETag alone does not guard a resume either.
	os.WriteFile(dst, content[:500], 0o644)
	os.WriteFile(dst+MetaSuffix, []byte(`{"url":"`+srv.URL+`","etag":"W/\"w\"","size":200000}`), 0o644)
	if _, err := newClient(t, testOptions()).Download(context.Background(), srv.URL, dst, 1<<20, -1); err != nil {
		t.Fatal(err)
	}
	if got := log.get(2).Get("Range"); got != "" {
		t.Fatalf("resumed with a weak ETag: Range %q", got)
	}
}

// HTTP_PROXY is honoured (in a subprocess: the environment is read once per
// process).
func TestProxyFromEnvironment(t *testing.T) {
	content := payload(10_000, 19)
	var sawHost atomic.Value
	sawHost.Store("")
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawHost.Store(r.URL.Host) // a proxy gets the absolute URL
		serve(w, r, `"p"`, content)
	}))
	defer proxy.Close()
	dst := dstPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL, "NO_PROXY=", "no_proxy=",
		"MIRROR_FETCH_HELPER_URL=http://upstream.invalid/pkg.tar.gz", "MIRROR_FETCH_HELPER_DST="+dst)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sha256="+sumOf(content)) || sawHost.Load() != "upstream.invalid" {
		t.Fatalf("not fetched through the proxy: host %q, output %s", sawHost.Load(), out)
	}
}

// TestDownloadDoesNotFollowLinks: a symbolic link planted in the partial
// folder, at the partial's name or at its side file's, is not followed (the
// upstream's bytes would be written wherever it points): it is replaced by
// a file of the download's own.
func TestDownloadDoesNotFollowLinks(t *testing.T) {
	content := payload(400_000, 6)
	var log reqLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			cut(t, w, `"v1"`, content, 200_000) // a side file is written
			return
		}
		serve(w, r, `"v1"`, content)
	}))
	defer srv.Close()
	victims := t.TempDir()
	dst := dstPath(t)
	for _, name := range []string{dst, dst + MetaSuffix} {
		victim := filepath.Join(victims, filepath.Base(name))
		if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, name); err != nil {
			t.Fatal(err)
		}
	}
	res, err := newClient(t, testOptions()).Download(context.Background(), srv.URL+"/f", dst, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, res, content)
	if fi, err := os.Lstat(dst); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("partial after the download: %v, %v", fi, err)
	}
	for _, name := range []string{dst, dst + MetaSuffix} {
		if b, err := os.ReadFile(filepath.Join(victims, filepath.Base(name))); err != nil || string(b) != "precious" {
			t.Errorf("the target of the link at %s now holds %d bytes (%v)", filepath.Base(name), len(b), err)
		}
	}
}
