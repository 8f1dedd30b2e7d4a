package serve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/repo"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// publish makes generation seq of the repository at dir hold files.
func publish(t testing.TB, dir string, seq uint64, files map[string][]byte, keep int) {
	t.Helper()
	ctx := context.Background()
	r, err := repo.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	in := r.Ingest(ctx)
	rec := &repo.Record{Sequence: seq, BundleID: fmt.Sprint("b", seq), Signer: "0123456789ABCDEF",
		Created: time.Now().UTC(), Expires: time.Now().Add(time.Hour).UTC(), Imported: time.Now().UTC()}
	for p, data := range files {
		if err := in.Add(sum(data), int64(len(data)), bytes.NewReader(data)); err != nil {
			in.Wait()
			t.Fatal(err)
		}
		rec.Tree = append(rec.Tree, repo.Entry{Path: p, SHA256: sum(data), Size: int64(len(data))})
	}
	if err := in.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(ctx, rec, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Collect(ctx, keep); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// raw sends a request line as written, bypassing any client-side cleaning.
func raw(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestServeFiles(t *testing.T) {
	dir := t.TempDir()
	deb := bytes.Repeat([]byte("0123456789"), 1000)
	publish(t, dir, 1, map[string][]byte{
		"debian/pool/main/h/hello_2.10_amd64.deb": deb,
		"debian/dists/bookworm/InRelease":         []byte("signed release\n"),
		"tools/hello.tar.gz":                      []byte("gzip bytes"),
		"pypi/simple/hello/index.html":            []byte("<a href=x>x</a>"),
	}, 3)
	srv := httptest.NewServer(NewHandler(dir))
	defer srv.Close()

	resp, body := get(t, srv.URL+"/debian/pool/main/h/hello_2.10_amd64.deb")
	if resp.StatusCode != 200 || !bytes.Equal(body, deb) {
		t.Fatalf("GET deb: %d, %d bytes", resp.StatusCode, len(body))
	}
	etag := resp.Header.Get("ETag")
	if etag != `"`+sum(deb)+`"` {
		t.Errorf("ETag %q, want the SHA-256", etag)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.debian.binary-package" {
		t.Errorf("Content-Type %q", ct)
	}
	if resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("headers %v", resp.Header)
	}
	for path, want := range map[string]string{
		"/debian/dists/bookworm/InRelease": "text/plain; charset=utf-8",
		"/tools/hello.tar.gz":              "application/gzip",
	} {
		if resp, _ := get(t, srv.URL+path); resp.Header.Get("Content-Type") != want {
			t.Errorf("%s: Content-Type %q, want %q", path, resp.Header.Get("Content-Type"), want)
		}
	}

	// Range.
	resp, body = get(t, srv.URL+"/debian/pool/main/h/hello_2.10_amd64.deb", "Range", "bytes=5-14")
	if resp.StatusCode != http.StatusPartialContent || string(body) != "5678901234" ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 5-14/%d", len(deb)) {
		t.Fatalf("Range: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	resp, _ = get(t, srv.URL+"/debian/pool/main/h/hello_2.10_amd64.deb", "Range", "bytes=99999-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: %d", resp.StatusCode)
	}
	// Conditional.
	resp, body = get(t, srv.URL+"/debian/pool/main/h/hello_2.10_amd64.deb", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	resp, _ = get(t, srv.URL+"/debian/pool/main/h/hello_2.10_amd64.deb", "If-None-Match", `"`+sum([]byte("other"))+`"`)
	if resp.StatusCode != 200 {
		t.Errorf("If-None-Match other: %d", resp.StatusCode)
	}
	// Folders: index.html, listing, redirect.
	resp, body = get(t, srv.URL+"/pypi/simple/hello/")
	if resp.StatusCode != 200 || string(body) != "<a href=x>x</a>" {
		t.Errorf("index.html: %d %q", resp.StatusCode, body)
	}
	resp, _ = get(t, srv.URL+"/pypi/simple/hello")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/pypi/simple/hello/" {
		t.Errorf("folder without slash: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = get(t, srv.URL+"/debian/pool/main/h/")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `href="hello_2.10_amd64.deb"`) {
		t.Errorf("listing: %d %q", resp.StatusCode, body)
	}
	// Methods.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/tools/hello.tar.gz", strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v", resp, err)
	}
	req, _ = http.NewRequest(http.MethodHead, srv.URL+"/tools/hello.tar.gz", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 || resp.ContentLength != 10 {
		t.Errorf("HEAD: %v %v", resp, err)
	}
	if resp, _ := get(t, srv.URL+"/nope"); resp.StatusCode != 404 {
		t.Errorf("missing file: %d", resp.StatusCode)
	}
}

func TestServeNoEscape(t *testing.T) {
	dir := t.TempDir()
	publish(t, dir, 1, map[string][]byte{"tools/a.txt": []byte("public")}, 3)
	secret := "TOP-SECRET-" + t.Name()
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte(secret), 0o644)
	outside := filepath.Join(t.TempDir(), "outside.txt")
	os.WriteFile(outside, []byte(secret), 0o644)
	gen := repo.GenerationPath(dir, 1)
	// Planted links: absolute out, relative out, relative in, a folder out.
	os.Symlink(outside, filepath.Join(gen, "tools", "abs"))
	os.Symlink("../../../secret.txt", filepath.Join(gen, "tools", "rel"))
	os.Symlink("a.txt", filepath.Join(gen, "tools", "inside"))
	os.Symlink(dir, filepath.Join(gen, "up"))

	srv := httptest.NewServer(NewHandler(dir))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, target := range []string{
		"/../secret.txt", "/../../secret.txt", "/tools/../../secret.txt",
		"/%2e%2e/secret.txt", "/%2E%2E/%2e%2e/secret.txt", "/tools/%2e%2e/%2e%2e/secret.txt",
		"/..%2fsecret.txt", "/tools/..%2f..%2fsecret.txt", "/..%5csecret.txt", "/..\\secret.txt",
		"/tools/abs", "/tools/rel", "/tools/inside", "/up/secret.txt", "/up/state.json", "/up/",
		"/%00", "/tools/a.txt%00", "//secret.txt", "/./../secret.txt",
		"http://x/../secret.txt", "*",
	} {
		code, body := raw(t, addr, target)
		if strings.Contains(body, secret) || strings.Contains(body, "sequence") {
			t.Errorf("%s: leaked (%d)", target, code)
		}
		if code == 200 && !strings.Contains(body, "<pre>") {
			t.Errorf("%s: served %d %q", target, code, body)
		}
	}
	// The listing never shows the links.
	if _, body := raw(t, addr, "/tools/"); strings.Contains(body, "abs") || strings.Contains(body, "inside") || !strings.Contains(body, "a.txt") {
		t.Errorf("listing: %q", body)
	}
	if code, body := raw(t, addr, "/tools/a.txt"); code != 200 || body != "public" {
		t.Errorf("plain file: %d %q", code, body)
	}
}

func TestServeNothingImported(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewServer(NewHandler(dir))
	defer srv.Close()
	if resp, _ := get(t, srv.URL+"/"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := Serve(context.Background(), l, dir); !errors.Is(err, repo.ErrNotRepository) {
		t.Fatalf("Serve on an empty repository: %v", err)
	}
}

// A download in flight keeps reading the generation it started with, even
// when the next generation replaces the file and the old one is collected;
// the next request sees the new generation.
func TestServeSwitchDuringDownload(t *testing.T) {
	dir := t.TempDir()
	old := bytes.Repeat([]byte("old-"), 4<<20) // 16 MiB: more than the socket buffers
	publish(t, dir, 1, map[string][]byte{"big.bin": old, "index": []byte("1")}, 1)
	srv := httptest.NewServer(NewHandler(dir))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	newer := bytes.Repeat([]byte("new-"), 1<<20)
	publish(t, dir, 2, map[string][]byte{"big.bin": newer, "index": []byte("2")}, 1)
	if _, err := os.Stat(repo.GenerationPath(dir, 1)); !os.IsNotExist(err) {
		t.Fatal("generation 1 was not collected; the test would prove nothing")
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(first, rest...); !bytes.Equal(got, old) {
		t.Fatalf("download across the switch: %d bytes, mixed or cut", len(got))
	}
	if _, body := get(t, srv.URL+"/index"); string(body) != "2" {
		t.Fatalf("after the switch: index %q", body)
	}
	if _, body := get(t, srv.URL+"/big.bin"); !bytes.Equal(body, newer) {
		t.Fatal("after the switch: old big.bin")
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	publish(t, dir, 1, map[string][]byte{"a": []byte("a")}, 3)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, dir) }()
	if _, body := get(t, "http://"+l.Addr().String()+"/a"); string(body) != "a" {
		t.Fatalf("body %q", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(ShutdownGrace + 5*time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("still listening after shutdown")
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/": ".", "/a/b": "a/b", "/a/../b": "b", "/../a": "a", "//a//b/": "a/b", "/a/./b": "a/b",
	} {
		if got, ok := cleanPath(in); !ok || got != want {
			t.Errorf("cleanPath(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "a", "/a\\b", "/a\x00"} {
		if got, ok := cleanPath(in); ok {
			t.Errorf("cleanPath(%q) = %q, accepted", in, got)
		}
	}
}

// Clients download without pause while generations are switched and
// collected: every response is complete and belongs to one generation
// (the index and the data file of a generation carry its number).
func TestServeUnderSwitches(t *testing.T) {
	dir := t.TempDir()
	gen := func(n int) map[string][]byte {
		return map[string][]byte{
			"index":    []byte(fmt.Sprintf("generation %d", n)),
			"data.bin": bytes.Repeat([]byte(fmt.Sprintf("%08d", n)), 32<<10), // 256 KiB
		}
	}
	publish(t, dir, 1, gen(1), 3)
	srv := httptest.NewServer(NewHandler(dir))
	defer srv.Close()
	stop := make(chan struct{})
	errc := make(chan error, 8)
	counts := make(chan int, 8)
	for w := range 8 {
		go func() {
			n := 0
			defer func() { counts <- n }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := []string{"/index", "/data.bin"}[(n+w)%2]
				resp, err := http.Get(srv.URL + p)
				if err != nil {
					errc <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					errc <- fmt.Errorf("%s: %d %v", p, resp.StatusCode, err)
					return
				}
				var k int
				switch p {
				case "/index":
					if _, err := fmt.Sscanf(string(body), "generation %d", &k); err != nil {
						errc <- fmt.Errorf("index %q", body)
						return
					}
				default:
					fmt.Sscanf(string(body[:8]), "%08d", &k)
					if !bytes.Equal(body, gen(k)["data.bin"]) {
						errc <- fmt.Errorf("data.bin of %d bytes is not one generation's", len(body))
						return
					}
				}
				n++
			}
		}()
	}
	for n := 2; n <= 7; n++ {
		time.Sleep(100 * time.Millisecond)
		publish(t, dir, uint64(n), gen(n), 3)
	}
	close(stop)
	total := 0
	for range 8 {
		total += <-counts
	}
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if total < 100 {
		t.Fatalf("only %d downloads during the switches; the test proved little", total)
	}
	t.Logf("%d downloads across 6 switches", total)
}

// TestFolderRedirectStaysHere: a folder asked for without its slash is
// redirected to the cleaned path on this server, never to a Location that
// starts with "//" (another host, for a browser), whatever the raw path
// holds.
func TestFolderRedirectStaysHere(t *testing.T) {
	dir := t.TempDir()
	publish(t, dir, 1, map[string][]byte{"debian/dists/x": []byte("x")}, 2)
	h := NewHandler(dir)
	for target, want := range map[string]string{
		"//evil.example/../debian":   "/debian/",
		"/%2Fevil.example/../debian": "/debian/",
		"/debian":                    "/debian/",
		"/debian/dists":              "/debian/dists/",
	} {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: mirror\r\n\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if loc := rec.Header().Get("Location"); rec.Code != http.StatusMovedPermanently || loc != want {
			t.Errorf("GET %s: %d, Location %q; want 301 to %q", target, rec.Code, loc, want)
		}
	}
}
