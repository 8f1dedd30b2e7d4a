package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/cheggaaa/pb/v3"
	"golang.org/x/term"

	"github.com/mirror-tool/mirror/mirror"
)

// syncProgress draws `mirror sync` progress: pb/v3 bars for packages and
// bytes on a terminal, plain lines otherwise (cron), or one JSON object per
// line with --log-format json. Off a terminal, each stage gets a line when
// it ends (the next stage begins, or Stop), and one per interval while it
// lasts: a line never shows a stage's counts before it has any. Counts of
// rejected packages and received bytes are the run's so far. It is safe
// for concurrent use.
type syncProgress struct {
	mu       sync.Mutex
	w        io.Writer
	json     bool
	interval time.Duration
	now      func() time.Time

	pool    *pb.Pool
	pkgBar  *pb.ProgressBar
	byteBar *pb.ProgressBar

	stage    string
	total    int
	done     int
	rejected int
	bytes    int64
	last     time.Time
	open     bool // a stage began whose last line is not printed yet

	bundleDone, bundleTotal int64
}

// progressInterval is how often the plain and JSON forms print a line.
const progressInterval = 10 * time.Second

func newSyncProgress(w io.Writer, format string) *syncProgress {
	p := &syncProgress{w: w, json: format == "json", interval: progressInterval, now: time.Now}
	p.last = p.now()
	if f, ok := w.(*os.File); ok && !p.json && term.IsTerminal(int(f.Fd())) {
		p.bars(w)
		if err := p.pool.Start(); err != nil {
			p.pool = nil
		}
	}
	return p
}

// bars makes the terminal form's two bars and the pool that draws them on
// w (once started).
func (p *syncProgress) bars(w io.Writer) {
	p.pkgBar = pb.New(0).SetTemplateString(`{{string . "stage"}} {{counters . }} {{string . "unit"}} {{bar . }} {{percent . }}`).SetWriter(w)
	p.byteBar = pb.New64(0).Set(pb.Bytes, true).SetTemplateString(`received {{counters . }}, {{speed . "%s/s" "? B/s"}}`).SetWriter(w)
	p.pool = pb.NewPool(p.pkgBar, p.byteBar)
	p.pool.Output = w
}

func (p *syncProgress) Stage(name string, items int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pool == nil && p.open {
		p.line(true) // the stage that ends
	}
	p.stage, p.total, p.done = name, items, 0
	p.bundleDone, p.bundleTotal = 0, 0
	p.open = true
	if p.pool != nil {
		unit := "packages"
		if name == "resolve" {
			unit = "sources"
		}
		p.pkgBar.Set("stage", name).Set("unit", unit).Set(pb.Bytes, false).SetTotal(int64(items)).SetCurrent(0)
		return
	}
	p.last = p.now() // the next line comes an interval into the stage, or at its end
}

func (p *syncProgress) Bytes(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += n
	if p.pool != nil {
		p.byteBar.Add64(n)
		return
	}
	p.line(false)
}

func (p *syncProgress) Package(r mirror.PackageResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if r.Status == mirror.StatusRejected {
		p.rejected++
	}
	if p.pool != nil {
		if p.stage != "resolve" { // counted in sources, which it does not report one by one
			p.pkgBar.Increment()
		}
		return
	}
	if p.json && r.Status == mirror.StatusRejected {
		p.emit(map[string]any{"event": "rejected", "source": r.Source, "package": r.Name, "reason": r.Reason})
	}
	p.line(false)
}

func (p *syncProgress) BundleBytes(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pool != nil {
		p.pkgBar.Set(pb.Bytes, true).Set("unit", "written").SetTotal(total).SetCurrent(done)
		return
	}
	p.bundleDone, p.bundleTotal = done, total
	p.line(false)
}

// line prints a progress line when forced or when the interval passed.
// Called with mu held.
func (p *syncProgress) line(force bool) {
	now := p.now()
	if !force && now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	if p.json {
		ev := map[string]any{"event": "progress", "stage": p.stage, "done": p.done, "total": p.total, "rejected": p.rejected, "bytes": p.bytes}
		if p.stage == "bundle" {
			ev["bundle_bytes"], ev["bundle_total"] = p.bundleDone, p.bundleTotal
		}
		p.emit(ev)
		return
	}
	switch {
	case p.stage == "resolve":
		// Counted in sources (Stage's items); the packages it rejects
		// are counted too, but are not the stage's unit.
		fmt.Fprintf(p.w, "mirror: sync: resolve %s, %d rejected, %s received\n", plural(p.total, "source"), p.rejected, fmtBytes(p.bytes))
	case p.stage == "bundle" && p.bundleTotal == 0:
		fmt.Fprintf(p.w, "mirror: sync: bundle of %s\n", plural(p.total, "blob")) // its size comes with the first bytes written
	case p.stage == "bundle":
		fmt.Fprintf(p.w, "mirror: sync: bundle %s of %s of package data written\n", fmtBytes(p.bundleDone), fmtBytes(p.bundleTotal))
	default:
		fmt.Fprintf(p.w, "mirror: sync: %s %d/%s, %d rejected, %s received\n", p.stage, p.done, plural(p.total, "package"), p.rejected, fmtBytes(p.bytes))
	}
}

// Warning writes a {"event":"warning"} line (JSON form only).
func (p *syncProgress) Warning(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.emit(map[string]any{"event": "warning", "message": msg})
}

func (p *syncProgress) emit(v map[string]any) {
	v["time"] = p.now().UTC().Format(time.RFC3339)
	p.w.Write(jsonLine(v))
}

// Stop removes the bars before the summary is printed.
func (p *syncProgress) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pool != nil {
		p.pool.Stop()
		p.pool = nil
		return
	}
	if p.open {
		p.line(true) // the last stage's end
		p.open = false
	}
}

// plural writes a count with its noun: "1 package", "3 packages".
func plural[N ~int | ~int64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// fmtBytes formats a byte count with binary units.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
