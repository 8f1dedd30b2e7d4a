package fetch

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// manyURLs makes n URLs under base, /d/0 .. /d/n-1.
func manyURLs(base string, n int) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/d/%d", base, i)
	}
	return urls
}

// docFor is the document the test servers give for /d/N.
func docFor(path string) []byte {
	return []byte("document " + path + strings.Repeat(".", len(path)*7%300))
}

// countConns counts the connections a test server accepted.
func countConns(srv *httptest.Server) *atomic.Int64 {
	var n atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func checkMany(t *testing.T, urls []string, got [][]byte, want func(i int) []byte) {
	t.Helper()
	if len(got) != len(urls) {
		t.Fatalf("%d results for %d URLs", len(got), len(urls))
	}
	for i := range urls {
		if w := want(i); !bytes.Equal(got[i], w) {
			t.Fatalf("%s: got %.60q, want %.60q", urls[i], got[i], w)
		}
	}
}

func TestGetManyPipelines(t *testing.T) {
	var reqs atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		if r.Header.Get("User-Agent") != "mirror-test" {
			t.Errorf("User-Agent %q", r.Header.Get("User-Agent"))
		}
		w.Write(docFor(r.URL.Path))
	}))
	conns := countConns(srv)
	srv.Start()
	defer srv.Close()
	opt := testOptions()
	opt.UserAgent = "mirror-test"
	var progress atomic.Int64
	opt.Progress = func(n int64) { progress.Add(n) }
	urls := manyURLs(srv.URL, 1000)
	got := newClient(t, opt).GetMany(context.Background(), urls, 1<<20)
	var total int64
	checkMany(t, urls, got, func(i int) []byte {
		d := docFor(fmt.Sprintf("/d/%d", i))
		total += int64(len(d))
		return d
	})
	if reqs.Load() != 1000 || conns.Load() != PipelineConns {
		t.Fatalf("%d requests on %d connections, want 1000 on %d", reqs.Load(), conns.Load(), PipelineConns)
	}
	if progress.Load() != total {
		t.Fatalf("progress reported %d bytes, want %d", progress.Load(), total)
	}
}

// rawServer runs serve on every connection a loopback listener accepts.
func rawServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

// TestGetManyWritesAhead is served by a server that answers nothing until it
// has read PipelineDepth requests: only a client that writes ahead gets
// anything from it.
func TestGetManyWritesAhead(t *testing.T) {
	base := rawServer(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		var paths []string
		for {
			req, err := http.ReadRequest(r)
			if err != nil {
				return
			}
			paths = append(paths, req.URL.Path)
			if len(paths) < PipelineDepth {
				continue
			}
			for _, p := range paths {
				d := docFor(p)
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(d), d)
			}
			paths = paths[:0]
		}
	})
	// PipelineConns connections, each with a multiple of PipelineDepth.
	urls := manyURLs(base, PipelineConns*PipelineDepth*4)
	got := newClient(t, testOptions()).GetMany(context.Background(), urls, 1<<20)
	checkMany(t, urls, got, func(i int) []byte { return docFor(fmt.Sprintf("/d/%d", i)) })
}

// TestGetManyKeepAliveLimit: a server that closes every connection after a
// few answers (as nginx does after keepalive_requests) gets the rest of the
// requests on new connections, no more written ahead than it answers; all
// documents arrive.
func TestGetManyKeepAliveLimit(t *testing.T) {
	for _, limit := range []int{2, 10, 40} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			var mu sync.Mutex
			perConn := map[string]int{}
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				perConn[r.RemoteAddr]++
				if perConn[r.RemoteAddr] == limit {
					w.Header().Set("Connection", "close")
				}
				mu.Unlock()
				w.Write(docFor(r.URL.Path))
			}))
			conns := countConns(srv)
			srv.Start()
			defer srv.Close()
			urls := manyURLs(srv.URL, 400)
			got := newClient(t, testOptions()).GetMany(context.Background(), urls, 1<<20)
			checkMany(t, urls, got, func(i int) []byte { return docFor(fmt.Sprintf("/d/%d", i)) })
			if c, want := conns.Load(), int64(400/limit); c < want || c > want+PipelineConns {
				t.Fatalf("%d connections for 400 answers, the server closing each after %d; want %d", c, limit, want)
			}
		})
	}
}

// TestGetManyNginx fetches through the real nginx with a keep-alive limit
// below the number of requests.
func TestGetManyNginx(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "d"), 0o755)
	for i := range 500 {
		if i == 7 {
			continue // a 404 in the middle
		}
		p := fmt.Sprintf("/d/%d", i)
		if err := os.WriteFile(filepath.Join(dir, p), docFor(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := nginxUpstream(t, dir, "keepalive_requests 100;")
	urls := manyURLs(base, 500)
	got := newClient(t, testOptions()).GetMany(context.Background(), urls, 1<<20)
	checkMany(t, urls, got, func(i int) []byte {
		if i == 7 {
			return nil
		}
		return docFor(fmt.Sprintf("/d/%d", i))
	})
}

// TestGetManyLeavesToGet: every answer other than a clean 200 within the
// limit is left nil (for Get), and the documents around it still arrive.
// Bodies over the limit are not read, so they end their connection (two of
// them here: more in a row would end pipelining to the server).
func TestGetManyLeavesToGet(t *testing.T) {
	kind := func(i int) int {
		if i == 4 || i == 155 {
			return i % 10
		}
		if i%10 == 4 || i%10 == 5 {
			return 0
		}
		return i % 10
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/d/"))
		switch kind(i) {
		case 1:
			http.NotFound(w, r)
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 3:
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case 4:
			w.Write(bytes.Repeat([]byte("x"), 2000)) // over the limit
		case 5:
			w.Header().Set("Content-Length", "100000") // announced over the limit
			w.WriteHeader(http.StatusOK)
		case 6:
			// Chunked: no Content-Length, within the limit.
			w.(http.Flusher).Flush()
			w.Write(docFor(r.URL.Path))
		default:
			w.Write(docFor(r.URL.Path))
		}
	}))
	defer srv.Close()
	urls := manyURLs(srv.URL, 300)
	got := newClient(t, testOptions()).GetMany(context.Background(), urls, 1000)
	checkMany(t, urls, got, func(i int) []byte {
		switch kind(i) {
		case 1, 2, 3, 4, 5:
			return nil
		}
		return docFor(fmt.Sprintf("/d/%d", i))
	})
}

// TestGetManyHostileServers: answers that break the protocol or its bounds
// end pipelining to that server; nothing is taken from them, and GetMany
// returns promptly.
func TestGetManyHostileServers(t *testing.T) {
	good := func(c net.Conn, p string) {
		d := docFor(p)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(d), d)
	}
	serveEach := func(answer func(c net.Conn, p string)) func(net.Conn) {
		return func(c net.Conn) {
			r := bufio.NewReader(c)
			for {
				req, err := http.ReadRequest(r)
				if err != nil {
					return
				}
				answer(c, req.URL.Path)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		serve func(net.Conn)
	}{
		{"huge header", serveEach(func(c net.Conn, p string) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Junk: %s\r\nContent-Length: 1\r\n\r\nx", strings.Repeat("j", 1<<20))
		})},
		{"endless header", serveEach(func(c net.Conn, p string) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			for {
				if _, err := io.WriteString(c, "X-More: more\r\n"); err != nil {
					return
				}
			}
		})},
		{"endless chunked body", serveEach(func(c net.Conn, p string) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			chunk := "400\r\n" + strings.Repeat("b", 0x400) + "\r\n"
			for {
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
		})},
		{"informational answers", serveEach(func(c net.Conn, p string) {
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
			good(c, p)
		})},
		{"garbage", serveEach(func(c net.Conn, p string) { io.WriteString(c, "SSH-2.0-OpenSSH\r\n\r\n") })},
		{"silence", func(c net.Conn) { io.Copy(io.Discard, c) }},
		{"closes at once", func(c net.Conn) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := rawServer(t, tc.serve)
			opt := testOptions()
			opt.Timeout = 300 * time.Millisecond
			urls := manyURLs(base, 200)
			start := time.Now()
			got := newClient(t, opt).GetMany(context.Background(), urls, 1<<20)
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("GetMany took %v", d)
			}
			checkMany(t, urls, got, func(int) []byte { return nil })
		})
	}
}

func TestGetManyCancel(t *testing.T) {
	base := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	opt := testOptions()
	opt.Timeout = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	got := newClient(t, opt).GetMany(ctx, manyURLs(base, 100), 1<<20)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("GetMany returned %v after its context was cancelled", d)
	}
	for _, g := range got {
		if g != nil {
			t.Fatal("a document from a silent server")
		}
	}
}

// docServer serves docFor(path) for every path, over TLS when tls is set,
// and counts the requests it answered.
func docServer(t *testing.T, tls bool) (*httptest.Server, *atomic.Int64) {
	var reqs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		w.Write(docFor(r.URL.Path))
	})
	srv := httptest.NewUnstartedServer(h)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &reqs
}

// TestGetManyNotPipelined: what GetMany leaves to Get whole.
func TestGetManyNotPipelined(t *testing.T) {
	srv, reqs := docServer(t, false)
	urls := manyURLs(srv.URL, 10)
	none := func(int) []byte { return nil }

	opt := testOptions()
	opt.NoPipelining = true
	checkMany(t, urls, newClient(t, opt).GetMany(context.Background(), urls, 1<<20), none)

	opt = testOptions()
	opt.Transport = srv.Client().Transport
	checkMany(t, urls, newClient(t, opt).GetMany(context.Background(), urls, 1<<20), none)

	c := newClient(t, testOptions())
	proxy, _ := url.Parse("http://127.0.0.1:1")
	c.tr.Proxy = http.ProxyURL(proxy)
	checkMany(t, urls, c.GetMany(context.Background(), urls, 1<<20), none)

	cred := strings.Replace(srv.URL, "http://", "http://user:secret@", 1)
	odd := []string{cred + "/d/1", "ftp://example.invalid/x", "not a url\x7f", "http:///nohost"}
	checkMany(t, odd, newClient(t, testOptions()).GetMany(context.Background(), odd, 1<<20), none)
	if reqs.Load() != 0 {
		t.Fatalf("%d requests reached the server", reqs.Load())
	}
}

func TestGetManyBudget(t *testing.T) {
	doc := bytes.Repeat([]byte("z"), 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(doc) }))
	defer srv.Close()
	n := MaxManyBytes>>20 + 20
	got := newClient(t, testOptions()).GetMany(context.Background(), manyURLs(srv.URL, n), 1<<20)
	var held, fetched int
	for _, g := range got {
		if g != nil {
			held += len(g)
			fetched++
		}
	}
	if held > MaxManyBytes || fetched < n-20-PipelineConns {
		t.Fatalf("held %d bytes in %d documents of %d (bound %d)", held, fetched, n, MaxManyBytes)
	}
}

func TestGetManyTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(docFor(r.URL.Path))
	}))
	defer srv.Close()
	ca := caFileOf(t, srv)
	opt := testOptions()
	opt.CAFile = ca
	urls := manyURLs(srv.URL, 100)
	checkMany(t, urls, newClient(t, opt).GetMany(context.Background(), urls, 1<<20),
		func(i int) []byte { return docFor(fmt.Sprintf("/d/%d", i)) })
	// Without the CA the server is not trusted: nothing.
	checkMany(t, urls, newClient(t, testOptions()).GetMany(context.Background(), urls, 1<<20),
		func(int) []byte { return nil })
}

// FuzzGetManyAnswers feeds arbitrary bytes to GetMany as a server's whole
// answer stream (every connection gets the same bytes): it must return, and
// hold only documents within maxSize and MaxManyBytes.
func FuzzGetManyAnswers(f *testing.F) {
	five := okAnswer("one") + okAnswer("two") + okAnswer("three") + okAnswer("four") + okAnswer("five")
	for _, seed := range append([]string{five}, answerSeeds()...) {
		f.Add([]byte(seed))
	}
	const maxSize = 64
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := newClient(t, Options{Timeout: time.Second})
		c.tr.DialContext = func(context.Context, string, string) (net.Conn, error) {
			cli, srv := net.Pipe()
			go func() {
				defer srv.Close()
				go io.Copy(io.Discard, srv)
				srv.Write(stream)
			}()
			return cli, nil
		}
		got := c.GetMany(context.Background(), manyURLs("http://upstream.invalid", 5), maxSize)
		for _, g := range got {
			if len(g) > maxSize {
				t.Fatalf("a document of %d bytes, limit %d", len(g), maxSize)
			}
		}
		if string(stream) == five && fmt.Sprintf("%s", got) != "[one two three four five]" {
			t.Fatalf("five clean answers gave %q", got)
		}
	})
}

// connectProxy is an http:// proxy that serves CONNECT (and nothing else),
// asking for user:secret when auth is set; it counts the tunnels it made.
func connectProxy(t *testing.T, auth bool) (*url.URL, *atomic.Int64) {
	t.Helper()
	var tunnels atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		if auth && r.Header.Get("Proxy-Authorization") != "Basic dXNlcjpzZWNyZXQ=" {
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		tunnels.Add(1)
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
		io.Copy(c, up)
		c.Close()
		up.Close()
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	if auth {
		u.User = url.UserPassword("user", "secret")
	}
	return u, &tunnels
}

// TestGetManyThroughProxy: https upstreams are pipelined through an http://
// proxy's CONNECT tunnel (credentials from the proxy URL); a proxy that
// refuses the tunnel leaves every document to Get.
func TestGetManyThroughProxy(t *testing.T) {
	srv, reqs := docServer(t, true)
	ca := caFileOf(t, srv)
	opt := testOptions()
	opt.CAFile = ca
	urls := manyURLs(srv.URL, 300)
	for _, auth := range []bool{false, true} {
		proxy, tunnels := connectProxy(t, auth)
		c := newClient(t, opt)
		c.tr.Proxy = http.ProxyURL(proxy)
		reqs.Store(0)
		checkMany(t, urls, c.GetMany(context.Background(), urls, 1<<20), func(i int) []byte { return docFor(fmt.Sprintf("/d/%d", i)) })
		if n := tunnels.Load(); n < 1 || n > PipelineConns || reqs.Load() != 300 {
			t.Fatalf("auth %v: %d tunnels, %d requests", auth, n, reqs.Load())
		}
	}

	// Wrong credentials: the proxy refuses, nothing is taken, nothing
	// reaches the upstream.
	proxy, tunnels := connectProxy(t, true)
	proxy.User = url.UserPassword("user", "wrong")
	c := newClient(t, opt)
	c.tr.Proxy = http.ProxyURL(proxy)
	reqs.Store(0)
	checkMany(t, urls, c.GetMany(context.Background(), urls, 1<<20), func(int) []byte { return nil })
	if tunnels.Load() != 0 || reqs.Load() != 0 {
		t.Fatalf("refused proxy: %d tunnels, %d requests", tunnels.Load(), reqs.Load())
	}

	// Plain http through a proxy is not pipelined.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reqs.Add(1) }))
	defer plain.Close()
	proxy, tunnels = connectProxy(t, false)
	c = newClient(t, opt)
	c.tr.Proxy = http.ProxyURL(proxy)
	reqs.Store(0)
	purls := manyURLs(plain.URL, 10)
	checkMany(t, purls, c.GetMany(context.Background(), purls, 1<<20), func(int) []byte { return nil })
	if tunnels.Load() != 0 || reqs.Load() != 0 {
		t.Fatalf("plain http through a proxy: %d tunnels, %d requests", tunnels.Load(), reqs.Load())
	}
}
