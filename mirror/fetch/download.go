package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Result describes a finished download: the SHA-256 (lowercase hex) and size
// of the whole file as it is on disk.
type Result struct {
	SHA256 string
	Size   int64
}

// MetaSuffix is appended to a partial file's name to form the name of the
// file that records where the partial came from (URL, ETag, Last-Modified,
// total size), so that a later attempt resumes only the same version.
const MetaSuffix = ".fetch"

// maxMeta bounds the partial's side file read.
const maxMeta = 16 << 10

// copyBufSize is the buffer used to copy bodies to disk.
const copyBufSize = 128 << 10

// bufPool recycles copy buffers: a sync of many small files would otherwise
// allocate one per file.
var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// partMeta is the side file of a partial download.
type partMeta struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Size         int64  `json:"size"` // total size the server announced, -1 if unknown
}

// resumable reports whether the recorded validators can guard a resume
// (If-Range takes a strong ETag or a date). Without one, a file that changed
// upstream could be spliced onto the old prefix, so the partial restarts.
func (m *partMeta) resumable() bool {
	return m.ETag != "" && !strings.HasPrefix(m.ETag, "W/") || m.LastModified != ""
}

// RemovePartial deletes the partial file dst and its side file, for a caller
// whose check of a finished download failed.
func RemovePartial(dst string) error {
	err := os.Remove(dst)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	if merr := os.Remove(dst + MetaSuffix); merr != nil && !errors.Is(merr, fs.ErrNotExist) && err == nil {
		err = merr
	}
	return err
}

// Download fetches rawURL into the partial file dst and returns the SHA-256
// and size of the whole file.
//
// When dst already holds a prefix from an earlier attempt (this run or a
// previous one) of the same URL, Download asks only for the rest with a
// Range request, guarded by If-Range with the recorded ETag or Last-Modified:
// a server that answers 200 instead (it ignores Range, or the file changed)
// restarts the file from zero, so a changed file is never spliced onto an old
// prefix. A server that sends neither a strong ETag nor Last-Modified gives
// nothing to guard a resume with, so its partials restart from zero. The
// existing prefix is re-hashed, so the result covers every byte of dst.
//
// Never more than maxSize bytes are written (ErrTooLarge, and dst is
// removed). When wantSize >= 0, a file of another size is an error (ErrSize)
// that is retried. Timeouts, stalls, connection resets, truncated bodies,
// 5xx, 408 and 429 are retried with backoff; other 4xx are not (ErrNotFound for
// 404 and 410, *HTTPError otherwise). The error is an *Error naming the URL.
//
// On success the side file is removed and dst is left for the caller to
// check and adopt (store.Adopt, which fsyncs it). On failure a partial that
// can be resumed stays for the next call. Two calls must not share a dst at
// the same time.
func (c *Client) Download(ctx context.Context, rawURL, dst string, maxSize, wantSize int64) (Result, error) {
	fail := func(n int, err error) (Result, error) {
		return Result{}, &Error{URL: rawURL, Attempts: n, Err: err}
	}
	if err := checkURL(rawURL); err != nil {
		return fail(0, err)
	}
	if maxSize < 0 {
		return fail(0, fmt.Errorf("negative size limit %d", maxSize))
	}
	if wantSize > maxSize {
		return fail(0, fmt.Errorf("expected size %d is over the limit of %d bytes: %w", wantSize, maxSize, ErrTooLarge))
	}
	f, err := openNoLink(dst, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return fail(0, err)
	}
	defer f.Close()
	d := &download{c: c, url: rawURL, dst: dst, f: f, maxSize: maxSize, wantSize: wantSize}
	counted := 0
	hardCap := 1 // no retries: one attempt, progress or not
	if c.opt.Retries > 0 {
		hardCap = 10 * (c.opt.Retries + 1)
	}
	for attempt := 1; ; attempt++ {
		res, progressed, err := d.attempt(ctx)
		if err == nil {
			if d.metaOnDisk {
				os.Remove(dst + MetaSuffix)
			}
			return res, nil
		}
		err = classify(ctx, err)
		var ae *attemptError
		errors.As(err, &ae)
		if !ae.retry {
			if errors.Is(err, ErrTooLarge) {
				RemovePartial(dst)
			}
			return fail(attempt, ae.err)
		}
		if !progressed {
			counted++
		}
		if counted > c.opt.Retries || attempt >= hardCap {
			return fail(attempt, ae.err)
		}
		if err := sleep(ctx, c.backoff(max(counted, 1), ae.retryAfter)); err != nil {
			return fail(attempt, err)
		}
	}
}

type download struct {
	c                 *Client
	url, dst          string
	f                 *os.File
	maxSize, wantSize int64
	metaOnDisk        bool // the side file (may) exist
}

// reset empties the partial and forgets its origin.
func (d *download) reset() error {
	os.Remove(d.dst + MetaSuffix)
	d.metaOnDisk = false
	return d.f.Truncate(0)
}

func (d *download) readMeta() *partMeta {
	f, err := os.OpenFile(d.dst+MetaSuffix, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMeta+1))
	if err != nil || len(b) > maxMeta {
		return nil
	}
	var m partMeta
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return &m
}

// writeMeta records the origin of the partial. For a large or unknown size
// it is written before any body byte, so that even a killed process leaves a
// resumable partial; for a small file only when an attempt fails with bytes
// on disk (a killed process then leaves a partial without side file, which
// is restarted: cheap, and it saves a file creation per small download). A
// partial without a readable side file is never resumed. The side file is
// advisory (a torn one is simply not resumed), hence no fsync.
func (d *download) writeMeta(m *partMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	d.metaOnDisk = true
	f, err := openNoLink(d.dst+MetaSuffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// openNoLink opens a partial file or its side file without following a
// symbolic link: one planted in the partial folder would have the upstream's
// bytes written wherever it points. Such a link is removed (the folder is
// the run's own) and the file made afresh.
func openNoLink(name string, flag int) (*os.File, error) {
	f, err := os.OpenFile(name, flag|syscall.O_NOFOLLOW, 0o644)
	if errors.Is(err, syscall.ELOOP) {
		if rerr := os.Remove(name); rerr != nil {
			return nil, err
		}
		f, err = os.OpenFile(name, flag|syscall.O_NOFOLLOW, 0o644)
	}
	return f, err
}

// eagerMeta is the size from which the side file is written before the body.
const eagerMeta = 1 << 20

var errRestart = errors.New("partial file restarted from zero")

// minProgress is how many bytes an attempt must write so that its failure
// does not use up a retry: a flaky link that delivers a large file in pieces
// gets there, a slow drip that sends a few bytes per attempt does not.
const minProgress = 64 << 10

// attempt makes one request. progressed reports whether it wrote at least
// minProgress bytes before it failed.
func (d *download) attempt(ctx context.Context) (res Result, progressed bool, err error) {
	fi, err := d.f.Stat()
	if err != nil {
		return res, false, permanent(err)
	}
	have := fi.Size()
	var meta *partMeta
	if have > 0 { // an empty partial needs no origin: saves an open per file
		if meta = d.readMeta(); meta != nil {
			d.metaOnDisk = true
		}
	}
	if have > 0 && (meta == nil || meta.URL != d.url || !meta.resumable() || have > d.maxSize ||
		(d.wantSize >= 0 && have > d.wantSize) || (meta.Size >= 0 && have > meta.Size)) {
		if err := d.reset(); err != nil {
			return res, false, permanent(err)
		}
		have, meta = 0, nil
	}

	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := d.c.newRequest(actx, d.url)
	if err != nil {
		return res, false, permanent(err)
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		if meta.ETag != "" && !strings.HasPrefix(meta.ETag, "W/") {
			req.Header.Set("If-Range", meta.ETag)
		} else if meta.LastModified != "" {
			req.Header.Set("If-Range", meta.LastModified)
		}
	}
	resp, err := d.c.do(actx, cancel, req)
	if err != nil {
		return res, false, err
	}
	defer resp.Body.Close()

	start := int64(0)
	total := int64(-1)
	switch resp.StatusCode {
	case http.StatusOK:
		total = resp.ContentLength
	case http.StatusPartialContent:
		first, _, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		// A server that ignored If-Range still shows a changed file in
		// its validators: a continuation must carry the same ones.
		etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		changed := have > 0 && (etag != "" && meta.ETag != "" && etag != meta.ETag ||
			lm != "" && meta.LastModified != "" && lm != meta.LastModified)
		if !ok || have == 0 || first != have || changed || (meta.Size >= 0 && size != meta.Size) {
			// Not the continuation we asked for: start over.
			d.c.drain(cancel, resp.Body)
			if err := d.reset(); err != nil {
				return res, false, permanent(err)
			}
			return res, false, transient(fmt.Errorf("server answered range %q to a request for bytes %d-: %w",
				resp.Header.Get("Content-Range"), have, errRestart))
		}
		start, total = have, size
	case http.StatusRequestedRangeNotSatisfiable:
		d.c.drain(cancel, resp.Body)
		if have > 0 {
			etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
			changed := etag != "" && meta.ETag != "" && etag != meta.ETag ||
				lm != "" && meta.LastModified != "" && lm != meta.LastModified
			if size, ok := parseUnsatisfiedRange(resp.Header.Get("Content-Range")); ok && size == have &&
				(meta.Size < 0 || meta.Size == have) && !changed {
				// The partial is already the whole file.
				res, err := d.hashAll(ctx)
				return res, false, err
			}
		}
		if err := d.reset(); err != nil {
			return res, false, permanent(err)
		}
		return res, false, transient(fmt.Errorf("server refused range bytes=%d-: %w", have, errRestart))
	default:
		d.c.drain(cancel, resp.Body)
		return res, false, statusError(resp, d.url)
	}

	if total >= 0 {
		if total > d.maxSize {
			return res, false, permanent(fmt.Errorf("server announces %d bytes, limit %d: %w", total, d.maxSize, ErrTooLarge))
		}
		if d.wantSize >= 0 && total != d.wantSize {
			d.reset()
			return res, false, transient(fmt.Errorf("server announces %d bytes, want %d: %w", total, d.wantSize, ErrSize))
		}
	}

	h := sha256.New()
	var pending *partMeta // side file to write if this attempt leaves a partial
	if start == 0 {
		if have > 0 {
			if err := d.reset(); err != nil {
				return res, false, permanent(err)
			}
		}
		m := &partMeta{URL: d.url, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), Size: total}
		switch {
		case !m.resumable():
			// Nothing can guard a resume: a partial will restart. A side
			// file left by an earlier answer (written before a body that
			// never came) must not vouch for these bytes.
			os.Remove(d.dst + MetaSuffix)
			d.metaOnDisk = false
		case total < 0 || total >= eagerMeta:
			if err := d.writeMeta(m); err != nil {
				return res, false, permanent(err)
			}
		default:
			pending = m
			if d.metaOnDisk {
				// An earlier attempt's side file must not vouch for
				// these bytes while they arrive.
				os.Remove(d.dst + MetaSuffix)
				d.metaOnDisk = false
			}
		}
	} else if err := d.hashPrefix(ctx, h, start); err != nil {
		return res, false, err
	}

	// Read at most one byte beyond what may be written, to tell "exactly
	// the limit" from "over it".
	allowed := d.maxSize - start
	sizeLimited := false
	if d.wantSize >= 0 && d.wantSize-start < allowed {
		allowed, sizeLimited = d.wantSize-start, true
	}
	w := &offsetWriter{f: d.f, off: start, h: h}
	n, err := d.c.copyBody(actx, cancel, w, resp.Body, allowed+1)
	size := start + n
	if n > allowed {
		if sizeLimited {
			d.reset()
			return res, false, transient(fmt.Errorf("server sent more than %d bytes: %w", d.wantSize, ErrSize))
		}
		return res, false, permanent(fmt.Errorf("more than %d bytes: %w", d.maxSize, ErrTooLarge))
	}
	if pending != nil && n > 0 && (err != nil || size != total) {
		// Keep what arrived for the next attempt.
		if werr := d.writeMeta(pending); werr != nil {
			return res, false, permanent(werr)
		}
	}
	if err != nil {
		return res, n >= minProgress, err
	}
	if total >= 0 && size != total {
		return res, n >= minProgress, transient(fmt.Errorf("got %d of %d bytes: %w", size, total, io.ErrUnexpectedEOF))
	}
	if d.wantSize >= 0 && size != d.wantSize {
		return res, n >= minProgress, transient(fmt.Errorf("got %d bytes, want %d: %w", size, d.wantSize, ErrSize))
	}
	return Result{SHA256: hex.EncodeToString(h.Sum(nil)), Size: size}, false, nil
}

// hashPrefix feeds the first n bytes of the partial into h.
func (d *download) hashPrefix(ctx context.Context, h hash.Hash, n int64) error {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	got, err := io.CopyBuffer(h, &ctxReader{ctx: ctx, r: io.NewSectionReader(d.f, 0, n)}, *buf)
	if err != nil {
		return permanent(fmt.Errorf("re-hash partial %s: %w", d.dst, err))
	}
	if got != n {
		return permanent(fmt.Errorf("re-hash partial %s: %d of %d bytes", d.dst, got, n))
	}
	return nil
}

func (d *download) hashAll(ctx context.Context) (Result, error) {
	fi, err := d.f.Stat()
	if err != nil {
		return Result{}, permanent(err)
	}
	n := fi.Size()
	if d.wantSize >= 0 && n != d.wantSize {
		d.reset()
		return Result{}, transient(fmt.Errorf("partial has %d bytes, want %d: %w", n, d.wantSize, ErrSize))
	}
	h := sha256.New()
	if err := d.hashPrefix(ctx, h, n); err != nil {
		return Result{}, err
	}
	return Result{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// do sends req, cancelling it when no response headers arrive within the
// client's timeout.
func (c *Client) do(actx context.Context, cancel context.CancelCauseFunc, req *http.Request) (*http.Response, error) {
	// The error is made only when the timer fires: a sync of many small
	// files sends tens of thousands of requests.
	t := time.AfterFunc(c.opt.Timeout, func() {
		cancel(fmt.Errorf("no response within %v: %w", c.opt.Timeout, context.DeadlineExceeded))
	})
	resp, err := c.hc.Do(req)
	t.Stop()
	if err != nil {
		if cause := context.Cause(actx); cause != nil && cause != context.Canceled {
			err = fmt.Errorf("%w (%v)", cause, err)
		}
		return nil, err
	}
	return resp, nil
}

// copyBody copies at most limit bytes of body to w, cutting the transfer off
// (ErrStalled) when less than LowSpeedLimit bytes per second arrive over a
// StallTimeout window. It reports progress as bytes arrive.
func (c *Client) copyBody(actx context.Context, cancel context.CancelCauseFunc, w io.Writer, body io.Reader, limit int64) (int64, error) {
	var window atomic.Int64
	need := int64(float64(c.opt.LowSpeedLimit) * c.opt.StallTimeout.Seconds())
	if need < 1 {
		need = 1
	}
	var watchdog *time.Timer
	watchdog = time.AfterFunc(c.opt.StallTimeout, func() {
		if window.Swap(0) < need {
			cancel(fmt.Errorf("less than %d bytes in %v: %w", need, c.opt.StallTimeout, ErrStalled))
			return
		}
		watchdog.Reset(c.opt.StallTimeout)
	})
	defer watchdog.Stop()

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	r := io.LimitReader(body, limit)
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return n, permanent(werr)
			}
			n += int64(m)
			window.Add(int64(m))
			if c.opt.Progress != nil {
				c.opt.Progress(int64(m))
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			if cause := context.Cause(actx); cause != nil && cause != context.Canceled {
				rerr = fmt.Errorf("%w (%v)", cause, rerr)
			}
			return n, rerr
		}
	}
}

// offsetWriter writes sequentially at off and hashes what it wrote.
type offsetWriter struct {
	f   *os.File
	off int64
	h   hash.Hash
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	w.h.Write(p[:n])
	return n, err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// parseContentRange parses "bytes first-last/size" (size may be "*": -1).
func parseContentRange(v string) (first, last, size int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err error
	if first, err = strconv.ParseInt(a, 10, 64); err != nil || first < 0 {
		return 0, 0, 0, false
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
		return 0, 0, 0, false
	}
	if sz == "*" {
		return first, last, -1, true
	}
	if size, err = strconv.ParseInt(sz, 10, 64); err != nil || size <= last {
		return 0, 0, 0, false
	}
	return first, last, size, true
}

// parseUnsatisfiedRange parses "bytes */size".
func parseUnsatisfiedRange(v string) (int64, bool) {
	sz, found := strings.CutPrefix(strings.TrimSpace(v), "bytes */")
	if !found {
		return 0, false
	}
	n, err := strconv.ParseInt(sz, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
