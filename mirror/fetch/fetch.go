// Package fetch is mirror's HTTP(S) client for upstreams that must be treated
// as hostile: every read is bounded, every transfer is hashed while it
// streams, slow or stalled servers are cut off, transient failures are
// retried with exponential backoff and full jitter, and cut transfers resume
// with Range requests guarded by If-Range so that a file that changed between
// attempts is restarted, never spliced.
//
// fetch never decides whether content is good: Download reports the SHA-256
// and size of what it wrote, and the caller compares them with what the
// signed index promised before anything enters the store.
package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Version is the version in the default User-Agent. The command sets it.
var Version = "dev"

// Defaults for Options fields left zero.
const (
	DefaultTimeout       = 60 * time.Second
	DefaultRetries       = 4
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
	DefaultStallTimeout  = 30 * time.Second
	DefaultLowSpeedLimit = 1024 // bytes per second, averaged over StallTimeout
	// MaxRedirects is how many redirects one request may follow.
	MaxRedirects = 5
	// maxCAFile bounds the CA file read.
	maxCAFile = 4 << 20
	// maxErrorBody bounds how much of an error response is drained so the
	// connection can be reused.
	maxErrorBody = 64 << 10
)

var (
	// ErrNotFound: the server answered 404 (or 410). Not retried.
	ErrNotFound = errors.New("not found on the server")
	// ErrTooLarge: the content exceeds the size limit. Not retried.
	ErrTooLarge = errors.New("content exceeds the size limit")
	// ErrSize: the content is shorter or longer than the size the caller
	// expected.
	ErrSize = errors.New("content size differs from the expected size")
	// ErrStalled: the server sent less than the low-speed limit for the
	// whole stall timeout.
	ErrStalled = errors.New("transfer stalled")
	// ErrRedirect: a redirect was refused (too many, https to http, or a
	// scheme other than http/https).
	ErrRedirect = errors.New("redirect refused")
	// ErrScheme: the URL is not http or https.
	ErrScheme = errors.New("only http and https URLs are fetched")
)

// HTTPError is an unexpected HTTP status. A 404 or 410 matches ErrNotFound.
type HTTPError struct {
	URL    string
	Status int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s: server answered %d %s", redact(e.URL), e.Status, http.StatusText(e.Status))
}

func (e *HTTPError) Unwrap() error {
	if e.Status == http.StatusNotFound || e.Status == http.StatusGone {
		return ErrNotFound
	}
	return nil
}

// Error is a failed fetch: the URL, how many attempts were made, and the
// last cause (which errors.Is/As see through Unwrap).
type Error struct {
	URL      string
	Attempts int
	Err      error
}

func (e *Error) Error() string {
	if e.Attempts > 1 {
		return fmt.Sprintf("fetch %s (after %d attempts): %v", redact(e.URL), e.Attempts, e.Err)
	}
	return fmt.Sprintf("fetch %s: %v", redact(e.URL), e.Err)
}

// redact hides a password in a URL before it goes into a message.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

func (e *Error) Unwrap() error { return e.Err }

// Options configure a Client. Zero fields take the defaults.
type Options struct {
	// Timeout bounds connecting, the TLS handshake and the wait for the
	// response headers of each request. Bodies are bounded by the stall
	// rule (StallTimeout, LowSpeedLimit) instead, so that large files on
	// slow but live links finish while a slow drip is cut off. Default 60s.
	Timeout time.Duration
	// Retries is how many times a failed attempt is retried (default 4;
	// negative means none). A Download attempt that wrote at least 64 KiB
	// before it failed does not count, so a flaky link still finishes a
	// large file (within a hard cap of 10*(Retries+1) attempts).
	Retries int
	// CAFile names a PEM file of extra CA certificates, added to the
	// system roots.
	CAFile string
	// UserAgent defaults to "mirror/<Version>".
	UserAgent string
	// MinBackoff and MaxBackoff bound the sleep between attempts
	// (exponential, full jitter). A Retry-After header is honoured up to
	// MaxBackoff. Defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// StallTimeout and LowSpeedLimit: an attempt that receives fewer than
	// LowSpeedLimit bytes per second over any StallTimeout window is cut
	// off (ErrStalled) and retried. Defaults 30s and 1024 B/s.
	StallTimeout  time.Duration
	LowSpeedLimit int64
	// Progress, when set, is called with the number of bytes received each
	// time some arrive. It is called from many goroutines at once when the
	// client is shared.
	Progress func(n int64)
	// Transport, when set, replaces the client's own transport (tests,
	// proxies). CAFile is then ignored, and GetMany pipelines nothing.
	Transport http.RoundTripper
	// NoPipelining turns GetMany's HTTP/1.1 pipelining off: every
	// document is then left to Get (for servers or middleboxes that
	// mishandle pipelined requests).
	NoPipelining bool
}

// Client fetches from upstreams. It is safe for concurrent use.
type Client struct {
	opt Options
	hc  *http.Client
	tr  *http.Transport // the client's own transport; nil with Options.Transport
}

// New builds a client: system roots plus the optional CA file, proxies from
// the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), bounded redirects.
func New(opt Options) (*Client, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Retries == 0 {
		opt.Retries = DefaultRetries
	} else if opt.Retries < 0 {
		opt.Retries = 0
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = DefaultMinBackoff
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = opt.MinBackoff
	}
	if opt.StallTimeout <= 0 {
		opt.StallTimeout = DefaultStallTimeout
	}
	if opt.LowSpeedLimit <= 0 {
		opt.LowSpeedLimit = DefaultLowSpeedLimit
	}
	if opt.UserAgent == "" {
		opt.UserAgent = "mirror/" + Version
	}
	c := &Client{opt: opt}
	rt := opt.Transport
	if rt == nil {
		tr, err := newTransport(opt)
		if err != nil {
			return nil, err
		}
		rt, c.tr = tr, tr
	}
	c.hc = &http.Client{
		Transport:     rt,
		CheckRedirect: checkRedirect,
	}
	return c, nil
}

func newTransport(opt Options) (*http.Transport, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if opt.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := readBounded(opt.CAFile, maxCAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file %s: %w", opt.CAFile, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate found; give a file of PEM \"CERTIFICATE\" blocks", opt.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: opt.Timeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: opt.Timeout,
		// No ResponseHeaderTimeout: Client.do's timer already bounds
		// the wait for the headers (from before the dial), and the
		// transport's would be a second timer on every request.
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    16,
		MaxResponseHeaderBytes: 64 << 10,
		// The exact bytes the server stores are what is hashed and
		// signed: never let the transport decompress them.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}, nil
}

func readBounded(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return fmt.Errorf("more than %d redirects: %w", MaxRedirects, ErrRedirect)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to %s: %w", req.URL.Redacted(), ErrRedirect)
	}
	if req.URL.Scheme == "http" {
		for _, v := range via {
			if v.URL.Scheme == "https" {
				return fmt.Errorf("redirect from https to %s: %w", req.URL.Redacted(), ErrRedirect)
			}
		}
	}
	return nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: %w", raw, ErrScheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", raw)
	}
	return nil
}

func (c *Client) newRequest(ctx context.Context, rawURL string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", c.opt.UserAgent)
	return req, nil
}

// attemptError is the outcome of one failed attempt: whether it may be
// retried, and the server's Retry-After wish (0 when none).
type attemptError struct {
	err        error
	retry      bool
	retryAfter time.Duration
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

func permanent(err error) error { return &attemptError{err: err} }
func transient(err error) error { return &attemptError{err: err, retry: true} }

// classify turns a transport or body error into an attemptError.
func classify(ctx context.Context, err error) error {
	var ae *attemptError
	if errors.As(err, &ae) {
		return err
	}
	if ctx.Err() != nil {
		// The caller gave up: never retry.
		return permanent(ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) && errors.Is(ue.Err, ErrRedirect) {
		return permanent(err)
	}
	if errors.Is(err, ErrScheme) {
		return permanent(err)
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) {
		return permanent(err)
	}
	// Timeouts, resets, refused connections, truncated bodies, DNS
	// hiccups: all worth another try.
	return transient(err)
}

// statusError classifies an unexpected status.
func statusError(resp *http.Response, rawURL string) error {
	he := &HTTPError{URL: rawURL, Status: resp.StatusCode}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return &attemptError{err: he, retry: true, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	default:
		return permanent(he)
	}
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > 1<<20 {
			n = 1 << 20
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// backoff is the sleep before retry number n (1-based): full jitter over an
// exponentially growing window, or the server's Retry-After, both capped at
// MaxBackoff.
func (c *Client) backoff(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, c.opt.MaxBackoff)
	}
	window := c.opt.MinBackoff
	for i := 1; i < n && window < c.opt.MaxBackoff; i++ {
		window *= 2
	}
	window = min(window, c.opt.MaxBackoff)
	return rand.N(window + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errDrainStalled ends an attempt whose unwanted body did not come within
// StallTimeout.
var errDrainStalled = errors.New("the rest of an unwanted answer did not come in time")

// drain reads a little of an unwanted body so the connection can be reused,
// then closes it. A server that sends the headers of an error (or of an
// answer too large) and then nothing would hold the read forever: after
// StallTimeout, cancel ends the attempt's request, which ends the read.
func (c *Client) drain(cancel context.CancelCauseFunc, body io.ReadCloser) {
	t := time.AfterFunc(c.opt.StallTimeout, func() { cancel(errDrainStalled) })
	io.Copy(io.Discard, io.LimitReader(body, maxErrorBody))
	t.Stop()
	body.Close()
}
