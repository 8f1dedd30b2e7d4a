package fetch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// chaosFiles is how many files TestChaos fetches (more with -tags=slow).
var chaosFiles = 100

// TestChaos fetches many files from a server that, at random, cuts
// connections at random offsets, answers 5xx, lies in Content-Length,
// ignores Range, answers the wrong range, and publishes a new version of a
// file between attempts. Every Download that reports success must report
// exactly one of the versions the server published, byte for byte: never a
// splice of two versions, never a truncated file.
func TestChaos(t *testing.T) {
	type file struct {
		mu       sync.Mutex
		versions [][]byte
	}
	files := make([]*file, chaosFiles)
	for i := range files {
		files[i] = &file{versions: [][]byte{payload(1+i*997%300_000, uint64(i))}}
	}
	var rmu sync.Mutex
	rng := rand.New(rand.NewPCG(42, 4242))
	roll := func(n int) int {
		rmu.Lock()
		defer rmu.Unlock()
		return rng.IntN(n)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.URL.Path[1:])
		if err != nil || i < 0 || i >= len(files) {
			http.NotFound(w, r)
			return
		}
		f := files[i]
		f.mu.Lock()
		if roll(5) == 0 && len(f.versions) < 6 {
			// A new release under the same name, mostly of the same
			// size (the case a size check alone cannot catch).
			size := len(f.versions[0])
			if roll(4) == 0 {
				size++
			}
			f.versions = append(f.versions, payload(size, uint64(1000*i+len(f.versions))))
		}
		v := len(f.versions) - 1
		content := f.versions[v]
		f.mu.Unlock()
		etag := fmt.Sprintf(`"%d-%d"`, i, v)
		switch roll(9) {
		case 0: // cut at a random offset
			if len(content) > 1 {
				cut(t, w, etag, content, roll(len(content)))
				return
			}
		case 1:
			http.Error(w, "oops", http.StatusInternalServerError)
			return
		case 2:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		case 3: // announce the whole file, send a part, return
			w.Header().Set("ETag", etag)
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			w.Write(content[:roll(len(content))])
			return
		case 4: // ignore Range
			w.Header().Set("ETag", etag)
			w.Write(content)
			return
		case 5: // a range that does not start where asked
			if r.Header.Get("Range") != "" && len(content) > 2 {
				first := roll(len(content) - 1)
				w.Header().Set("ETag", etag)
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, len(content)-1, len(content)))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(content[first:])
				return
			}
		}
		serve(w, r, etag, content)
	}))
	defer srv.Close()

	opt := testOptions()
	opt.Retries = 30
	opt.MaxBackoff = time.Millisecond
	c := newClient(t, opt)
	dir := t.TempDir()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	var mu sync.Mutex
	ok, failed := 0, 0
	for i := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dst := filepath.Join(dir, strconv.Itoa(i))
			res, err := c.Download(context.Background(), fmt.Sprintf("%s/%d", srv.URL, i), dst, 1<<20, -1)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			ok++
			f := files[i]
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, v := range f.versions {
				if sumOf(v) == res.SHA256 {
					checkFile(t, dst, res, v)
					return
				}
			}
			t.Errorf("file %d: reported %s (%d bytes), which is none of the %d published versions", i, res.SHA256, res.Size, len(f.versions))
		}()
	}
	wg.Wait()
	// With 30 retries nearly all get through; a few may give up, which is
	// an honest outcome, but the test must have exercised success.
	if ok < len(files)*9/10 {
		t.Fatalf("only %d of %d downloads succeeded (%d failed)", ok, len(files), failed)
	}
	t.Logf("%d ok, %d gave up", ok, failed)
}
