// Package serve publishes a repository's current generation over HTTP,
// read-only.
//
// Each request resolves `current` once, opens that generation folder as an
// os.Root and serves only regular files inside it: a switch of generations
// during a request never mixes two generations, an open download keeps its
// file even when the generation is collected, and neither "..", encoded or
// not, nor a symlink planted in a generation leads outside it. Range,
// If-None-Match (the ETag is the file's SHA-256 from the generation record)
// and If-Modified-Since are handled by net/http's ServeContent.
package serve

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mirror-tool/mirror/mirror/repo"
)

// Timeouts of the server. WriteIdle is per write, so that a large download
// on a slow link lives as long as it makes progress.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteIdleTimeout  = 60 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
	ShutdownGrace     = 10 * time.Second
	// MaxListing bounds the entries shown in a folder listing.
	MaxListing = 10000
)

// DefaultListen is loopback: exposing the mirror is a deliberate choice.
const DefaultListen = "127.0.0.1:8080"

// Handler serves the current generation of the repository at dir.
type Handler struct {
	dir string

	mu    sync.Mutex
	trees map[uint64]map[string]string // generation -> path -> sha256
	order []uint64
}

// NewHandler returns the handler for the repository at dir.
func NewHandler(dir string) *Handler {
	return &Handler{dir: dir, trees: map[uint64]map[string]string{}}
}

// open resolves `current` once and opens that generation.
func (h *Handler) open() (uint64, *os.Root, error) {
	var lastErr error
	for range 3 { // a collection may remove the generation just read: read again
		n, err := repo.Current(h.dir)
		if err != nil {
			return 0, nil, err
		}
		root, err := os.OpenRoot(repo.GenerationPath(h.dir, n))
		if err == nil {
			return n, root, nil
		}
		lastErr = err
	}
	return 0, nil, lastErr
}

// etags returns the path -> sha256 map of generation n, cached.
func (h *Handler) etags(n uint64) map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.trees[n]; ok {
		return t
	}
	rec, err := repo.ReadRecord(h.dir, n)
	if err != nil {
		return nil // served without ETag
	}
	t := make(map[string]string, len(rec.Tree))
	for _, e := range rec.Tree {
		t[e.Path] = e.SHA256
	}
	h.trees[n] = t
	h.order = append(h.order, n)
	if len(h.order) > 4 {
		delete(h.trees, h.order[0])
		h.order = h.order[1:]
	}
	return t
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rel, ok := cleanPath(r.URL.Path)
	if !ok {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	n, root, err := h.open()
	if err != nil {
		http.Error(w, "no generation is published", http.StatusServiceUnavailable)
		return
	}
	defer root.Close()
	w = &progressWriter{ResponseWriter: w, rc: http.NewResponseController(w)}

	fi, err := root.Lstat(rel)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if fi.IsDir() {
		if !strings.HasSuffix(r.URL.Path, "/") {
			// To the cleaned path: the raw one may start with "//", which
			// a browser reads as another host (an open redirect).
			to := "/"
			if rel != "." {
				to = "/" + rel + "/"
			}
			http.Redirect(w, r, (&url.URL{Path: to}).String(), http.StatusMovedPermanently)
			return
		}
		idx := path.Join(rel, "index.html")
		if ifi, err := root.Lstat(idx); err == nil && ifi.Mode().IsRegular() {
			h.serveFile(w, r, root, n, idx, ifi)
			return
		}
		h.list(w, r, root, rel)
		return
	}
	if !fi.Mode().IsRegular() {
		http.NotFound(w, r) // symlinks, devices, sockets: never served
		return
	}
	h.serveFile(w, r, root, n, rel, fi)
}

func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, root *os.Root, n uint64, rel string, lfi fs.FileInfo) {
	f, err := root.Open(rel)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || !os.SameFile(fi, lfi) {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", contentType(rel))
	hd.Set("X-Content-Type-Options", "nosniff")
	if sum, ok := h.etags(n)[rel]; ok {
		hd.Set("ETag", `"`+sum+`"`)
	}
	http.ServeContent(w, r, path.Base(rel), fi.ModTime(), f)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, root *os.Root, rel string) {
	d, err := root.Open(rel)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer d.Close()
	ents, err := d.ReadDir(MaxListing)
	if err != nil && len(ents) == 0 && rel != "." {
		http.NotFound(w, r)
		return
	}
	var names []string
	for _, e := range ents {
		switch {
		case e.Type().IsRegular():
			names = append(names, e.Name())
		case e.IsDir():
			names = append(names, e.Name()+"/")
		}
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		return
	}
	var b strings.Builder
	b.WriteString("<!doctype html>\n<pre>\n")
	for _, name := range names {
		u := url.URL{Path: name}
		fmt.Fprintf(&b, "<a href=\"%s\">%s</a>\n", html.EscapeString(u.String()), html.EscapeString(name))
	}
	b.WriteString("</pre>\n")
	w.Write([]byte(b.String()))
}

// cleanPath turns a request path into a path relative to the generation,
// "." for the top. ".." cannot climb above the top once cleaned; os.Root
// enforces the same again at open.
func cleanPath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\\") {
		return "", false
	}
	c := path.Clean(p)
	rel := strings.TrimPrefix(c, "/")
	if rel == "" {
		return ".", true
	}
	for _, el := range strings.Split(rel, "/") {
		if el == ".." {
			return "", false
		}
	}
	return rel, true
}

// Content types mime's table does not have (or gets wrong for mirrors).
var types = map[string]string{
	".deb":     "application/vnd.debian.binary-package",
	".udeb":    "application/vnd.debian.binary-package",
	".dsc":     "text/plain; charset=utf-8",
	".gz":      "application/gzip",
	".xz":      "application/x-xz",
	".zst":     "application/zstd",
	".bz2":     "application/x-bzip2",
	".tgz":     "application/gzip",
	".whl":     "application/zip",
	".zip":     "application/zip",
	".asc":     "application/pgp-signature",
	".sig":     "application/pgp-signature",
	".gpg":     "application/pgp-signature",
	".minisig": "text/plain; charset=utf-8",
	".json":    "application/json",
	".html":    "text/html; charset=utf-8",
	".txt":     "text/plain; charset=utf-8",
	".mod":     "text/plain; charset=utf-8",
	".info":    "application/json",
}

// Files named without an extension in apt repositories.
var names = map[string]string{
	"Release":    "text/plain; charset=utf-8",
	"InRelease":  "text/plain; charset=utf-8",
	"Packages":   "text/plain; charset=utf-8",
	"Sources":    "text/plain; charset=utf-8",
	"SHA256SUMS": "text/plain; charset=utf-8",
}

func contentType(rel string) string {
	base := path.Base(rel)
	if t, ok := names[base]; ok {
		return t
	}
	ext := strings.ToLower(path.Ext(base))
	if t, ok := types[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// progressWriter extends the write deadline at each write: a download lives
// while it moves, a stalled client is dropped after WriteIdleTimeout.
type progressWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.rc.SetWriteDeadline(time.Now().Add(WriteIdleTimeout))
	return p.ResponseWriter.Write(b)
}

func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// NewServer returns an http.Server for the repository with the timeouts
// above.
func NewServer(dir string) *http.Server {
	return &http.Server{
		Handler:           NewHandler(dir),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Serve serves the repository at dir on l until ctx is cancelled, then
// shuts down gracefully (in-flight requests get ShutdownGrace to finish).
func Serve(ctx context.Context, l net.Listener, dir string) error {
	if _, err := repo.Current(dir); err != nil {
		l.Close()
		return fmt.Errorf("serve %s: %w", dir, err)
	}
	srv := NewServer(dir)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
