package fetch

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of GetMany.
const (
	// PipelineDepth is how many requests GetMany keeps in flight on one
	// connection. The latency is what it pays for: a no-op sync of 20,000
	// signatures through a 20 ms round trip takes 1.3-1.4 s with two calls
	// of 64 x 4 connections at once (as sync makes them; 2.5-2.7 s with
	// one) against 54 s one request at a time on 8
	// (scripts/bench/sync-latency.sh).
	PipelineDepth = 64
	// PipelineConns is how many connections GetMany opens to one server
	// at a time.
	PipelineConns = 4
	// MaxManyBytes bounds the bodies one GetMany call holds in memory;
	// past it, the remaining URLs are left to Get.
	MaxManyBytes = 16 << 20
	// maxHeaderBytes bounds one response's status line and headers (the
	// transport's MaxResponseHeaderBytes).
	maxHeaderBytes = 64 << 10
	// chunkSlack is what a chunked body may add to maxSize in framing.
	chunkSlack = 64 << 10
	// maxShortSessions: after this many connections in a row that the
	// server ended after a single answer, GetMany stops pipelining to it.
	maxShortSessions = 3
)

// GetMany fetches many small documents (detached signatures, typically)
// from their servers with HTTP/1.1 pipelining: up to PipelineDepth requests
// are written ahead on each of up to PipelineConns keep-alive connections
// per server, and the answers are read back in order, so that ten thousand
// signatures cost a few hundred write and read calls instead of ten
// thousand round trips (apt pipelines its requests the same way).
//
// It returns one body per URL, in the order of urls. A nil body means that
// GetMany did not get that document cleanly, and the caller fetches it with
// Get, which retries, follows redirects and reports the error: an answer
// other than 200 (404s and redirects included), a body over maxSize, a
// connection that failed or was closed before the answer, a URL GetMany
// does not pipeline (plain http through a proxy, an https:// proxy, a URL
// with credentials, a client built with its own Transport or with
// NoPipelining; https through an http:// proxy goes through its CONNECT
// tunnel), or
// bodies past MaxManyBytes in all. GetMany itself never fails and never
// retries; every read is bounded (maxHeaderBytes of headers, maxSize of
// body per answer) and every answer must come within Timeout.
//
// An answer taken from the wrong place in the stream (a server that does
// not keep the order) can only give a document to the wrong URL; callers
// check what they get (signatures against the files they sign), as they
// must with Get.
func (c *Client) GetMany(ctx context.Context, urls []string, maxSize int64) [][]byte {
	out := make([][]byte, len(urls))
	if c.tr == nil || c.opt.NoPipelining || maxSize < 0 || !plainHeader(c.opt.UserAgent) {
		return out
	}
	type server struct {
		u     *url.URL
		proxy *url.URL
		idx   []int
	}
	servers := map[string]*server{}
	var order []*server
	targets := make([]string, len(urls))
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !plainHeader(u.Host) || u.User != nil {
			continue
		}
		target, ok := requestTarget(u)
		if !ok {
			continue
		}
		// The route depends on the scheme and host only: asked once per
		// server, not once per URL.
		key := u.Scheme + "://" + u.Host
		s, seen := servers[key]
		if !seen {
			if proxy, ok := c.route(u); ok {
				s = &server{u: u, proxy: proxy}
				order = append(order, s)
			}
			servers[key] = s // nil: not pipelined
		}
		if s == nil {
			continue
		}
		targets[i] = target
		s.idx = append(s.idx, i)
	}
	var budget atomic.Int64
	budget.Store(MaxManyBytes)
	var wg sync.WaitGroup
	for _, s := range order {
		conns := min(PipelineConns, (len(s.idx)+PipelineDepth-1)/PipelineDepth)
		per := (len(s.idx) + conns - 1) / conns
		for lo := 0; lo < len(s.idx); lo += per {
			p := &pipe{c: c, server: s.u, proxy: s.proxy, targets: targets, depth: PipelineDepth, idx: s.idx[lo:min(lo+per, len(s.idx))], maxSize: maxSize, out: out, budget: &budget}
			wg.Go(func() { p.run(ctx) })
		}
	}
	wg.Wait()
	return out
}

// route returns the proxy that requests to u go through (nil for none, as
// the transport's Proxy says: HTTPS_PROXY, HTTP_PROXY, NO_PROXY), and
// whether GetMany can pipeline on that route: directly, or for an https
// upstream through an http:// proxy's CONNECT tunnel, which carries the
// pipelined requests as it carries any bytes. Plain http through a proxy,
// and https:// proxies, are left to Get.
func (c *Client) route(u *url.URL) (proxy *url.URL, ok bool) {
	if c.tr.Proxy == nil {
		return nil, true
	}
	p, err := c.tr.Proxy(&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}})
	switch {
	case err != nil:
		return nil, false
	case p == nil:
		return nil, true
	case u.Scheme == "https" && p.Scheme == "http" && p.Host != "":
		return p, true
	}
	return nil, false
}

// pipe fetches one share of a server's URLs, over as many connections in a
// row as it takes.
type pipe struct {
	c       *Client
	server  *url.URL
	proxy   *url.URL // an http:// proxy to tunnel through (CONNECT), or nil
	targets []string // request targets ("/path?query") by index
	idx     []int    // indexes into targets and out, in request order
	depth   int64    // requests written ahead: PipelineDepth, or fewer for a server that ends connections sooner
	closed  bool     // the last session ended because the server closed the connection
	maxSize int64
	out     [][]byte
	budget  *atomic.Int64
}

func (p *pipe) run(ctx context.Context) {
	short := 0
	for len(p.idx) > 0 && ctx.Err() == nil {
		n, again := p.session(ctx)
		p.idx = p.idx[n:]
		if !again || n == 0 {
			return
		}
		if len(p.idx) == 0 {
			return
		}
		if p.closed {
			// The server ended the connection after n answers (a
			// keep-alive limit): write no more than that ahead on the
			// next ones, so that it is not sent requests it will drop.
			p.depth = min(p.depth, int64(n))
		}
		if n == 1 {
			if short++; short >= maxShortSessions {
				return
			}
		} else {
			short = 0
		}
	}
}

// errBound is returned by boundedReader past its allowance.
var errBound = errors.New("answer larger than its bound")

// boundedReader reads at most n more bytes (n is reset for each answer),
// calling after (if set) after every read.
type boundedReader struct {
	r     io.Reader
	n     int64
	after func()
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errBound
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if b.after != nil {
		b.after()
	}
	return n, err
}

// session runs one connection: it writes the requests of p.idx ahead (at
// most p.depth unanswered) and reads the answers in order. It returns
// how many of p.idx were answered (their out entries set, or left nil for
// Get) and whether another connection may take the rest.
func (p *pipe) session(ctx context.Context) (answered int, again bool) {
	p.closed = false
	conn, tcp, err := p.c.dial(ctx, p.server, p.proxy)
	if err != nil {
		return 0, false
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	w := &pipeWriter{p: p, conn: conn, sent: make(chan struct{}, len(p.idx)), poke: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
	defer func() {
		close(w.quit)
		conn.Close()
		<-w.done
		stop()
	}()
	go w.run()

	br := &boundedReader{r: conn, after: quickAck(tcp)}
	ar := &answerReader{r: bufio.NewReaderSize(br, 16<<10), lim: br, maxSize: p.maxSize}
	for k, i := range p.idx {
		select {
		case <-w.sent:
		case <-w.done:
			select {
			case <-w.sent:
			default:
				return k, k > 0 // the writer failed
			}
		}
		conn.SetReadDeadline(time.Now().Add(p.c.opt.Timeout))
		if ctx.Err() != nil {
			// Checked after the deadline is set: a cancellation from
			// here on moves it into the past again (stop above).
			return k, false
		}
		ans, err := ar.read()
		if err != nil {
			// A connection ended between answers is normal (a keep-alive
			// limit); an answer outside the subset, headers over the
			// bound or a 1xx end pipelining to the server.
			p.closed = errors.Is(err, errEnded)
			return k, k > 0 && p.closed
		}
		w.answered.Add(1)
		select {
		case w.poke <- struct{}{}:
		default:
		}
		if ans.body != nil {
			if p.budget.Add(-int64(len(ans.body))) < 0 {
				return k + 1, false
			}
			p.out[i] = ans.body
			if p.c.opt.Progress != nil {
				p.c.opt.Progress(int64(len(ans.body)))
			}
		}
		if !ans.whole {
			return k + 1, true // the rest of this body is not read
		}
		if ans.close {
			p.closed = true
			return k + 1, true
		}
	}
	return len(p.idx), true
}

// pipeWriter is a session's writer: it writes one request per index of
// p.idx while fewer than p.depth are unanswered; when the window is
// full it flushes and waits until half of it is answered, so that requests
// go out in batches.
type pipeWriter struct {
	p        *pipe
	conn     net.Conn
	answered atomic.Int64  // answers read (the reader adds)
	sent     chan struct{} // one per request written
	poke     chan struct{} // the reader read an answer
	quit     chan struct{} // the session is over
	done     chan struct{} // closed when run returns
}

func (w *pipeWriter) run() {
	defer close(w.done)
	// Requests are appended to buf and written a window at a time.
	buf := make([]byte, 0, 16<<10)
	flush := func() bool {
		w.conn.SetWriteDeadline(time.Now().Add(w.p.c.opt.Timeout))
		_, err := w.conn.Write(buf)
		buf = buf[:0]
		if err != nil {
			w.conn.Close() // the reader stops at once
			return false
		}
		return true
	}
	var written int64
	for _, i := range w.p.idx {
		if written-w.answered.Load() >= w.p.depth {
			if !flush() {
				return
			}
			for written-w.answered.Load() > w.p.depth/2 {
				select {
				case <-w.poke:
				case <-w.quit:
					return
				}
			}
		}
		buf = appendRequest(buf, w.p.targets[i], w.p.server.Host, w.p.c.opt.UserAgent)
		if len(buf) >= 16<<10 && !flush() {
			return
		}
		written++
		w.sent <- struct{}{}
	}
	flush()
}

// dial opens a connection to u's server as the transport would (its dialer,
// its TLS configuration; through proxy's CONNECT tunnel when proxy is set),
// speaking HTTP/1.1 only. tcp is the connection under TLS (conn itself for
// http).
func (c *Client) dial(ctx context.Context, u, proxy *url.URL) (conn, tcp net.Conn, err error) {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	dctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	target := net.JoinHostPort(u.Hostname(), port)
	addr := target
	if proxy != nil {
		pport := proxy.Port()
		if pport == "" {
			pport = "80"
		}
		addr = net.JoinHostPort(proxy.Hostname(), pport)
	}
	tcp, err = c.tr.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if proxy != nil {
		if err := tunnel(dctx, tcp, proxy, target); err != nil {
			tcp.Close()
			return nil, nil, err
		}
	}
	if u.Scheme != "https" {
		return tcp, tcp, nil
	}
	cfg := c.tr.TLSClientConfig.Clone()
	cfg.ServerName = u.Hostname()
	cfg.NextProtos = []string{"http/1.1"}
	tc := tls.Client(tcp, cfg)
	if err := tc.HandshakeContext(dctx); err != nil {
		tcp.Close()
		return nil, nil, err
	}
	return tc, tcp, nil
}

// tunnel asks the proxy at the other end of conn for a tunnel to target
// (CONNECT, with Basic credentials when the proxy URL has them, as the
// transport sends them) and reads its answer, bounded: anything but a 200,
// or bytes after it before the TLS handshake, is an error.
func tunnel(ctx context.Context, conn net.Conn, proxy *url.URL, target string) error {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
		defer conn.SetDeadline(time.Time{})
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: http.Header{}}
	if pu := proxy.User; pu != nil {
		pass, _ := pu.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(pu.Username()+":"+pass)))
	}
	if err := req.Write(conn); err != nil {
		return err
	}
	br := bufio.NewReaderSize(&boundedReader{r: conn, n: maxHeaderBytes}, 4096)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("proxy answered %q to CONNECT %s", resp.Status, target)
	}
	if br.Buffered() > 0 {
		return errors.New("proxy sent bytes after its answer to CONNECT")
	}
	return nil
}
