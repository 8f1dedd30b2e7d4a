package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror"
)

// TestSyncProgressPlain: off a terminal, a line at each stage and then at
// most one per interval.
func TestSyncProgressPlain(t *testing.T) {
	var b bytes.Buffer
	p := newSyncProgress(&b, "text")
	if p.pool != nil {
		t.Fatal("bars drawn on a buffer")
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	p.last = now
	p.Stage("resolve", 2)
	p.Package(mirror.PackageResult{Source: "s", Name: "gone", Status: mirror.StatusRejected, Reason: "listed but missing"})
	if got := b.String(); got != "mirror: sync: resolve 2 sources, 0 rejected, 0 B received\n" {
		t.Fatalf("resolve line = %q", got)
	}
	b.Reset()
	p.Stage("fetch", 3)
	p.Bytes(2048)
	p.Package(mirror.PackageResult{Source: "s", Name: "a", Status: mirror.StatusNew})
	if got := strings.Count(b.String(), "\n"); got != 1 {
		t.Fatalf("%d lines before the interval passed:\n%s", got, b.String())
	}
	now = now.Add(progressInterval)
	p.Package(mirror.PackageResult{Source: "s", Name: "b", Status: mirror.StatusRejected, Reason: "bad"})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || lines[0] != "mirror: sync: fetch 0/3 packages, 1 rejected, 0 B received" || lines[1] != "mirror: sync: fetch 2/3 packages, 2 rejected, 2.0 KiB received" {
		t.Fatalf("lines = %q", lines)
	}
	b.Reset()
	p.Stage("bundle", 5)
	now = now.Add(progressInterval)
	p.BundleBytes(1024, 4096)
	if got := b.String(); got != "mirror: sync: bundle of 5 blobs\nmirror: sync: bundle 1.0 KiB of 4.0 KiB written\n" {
		t.Fatalf("bundle lines = %q", got)
	}
	p.Stop()
}

// TestSyncProgressBars: the terminal form's bars name each stage's unit
// (sources, packages, bytes written) and the download speed in bytes per
// second.
func TestSyncProgressBars(t *testing.T) {
	var b bytes.Buffer
	p := newSyncProgress(&b, "text")
	p.bars(&b) // drawn on demand below, not by the (unstarted) pool
	defer func() { p.pool = nil }()
	bar := func(pb interface{ String() string }, want string) {
		t.Helper()
		if got := pb.String(); !strings.HasPrefix(got, want) {
			t.Fatalf("bar %q, want it to begin with %q", got, want)
		}
	}
	p.Stage("resolve", 2)
	p.Package(mirror.PackageResult{Source: "s", Name: "gone", Status: mirror.StatusRejected, Reason: "listed but missing"})
	bar(p.pkgBar, "resolve 0 / 2 sources")
	p.Stage("fetch", 3)
	p.Package(mirror.PackageResult{Source: "s", Name: "a", Status: mirror.StatusNew})
	bar(p.pkgBar, "fetch 1 / 3 packages")
	p.Bytes(2048)
	bar(p.byteBar, "received 2.00 KiB, ")
	if got := p.byteBar.String(); !strings.HasSuffix(strings.TrimSpace(got), "B/s") {
		t.Fatalf("byte bar %q: no speed in bytes per second", got)
	}
	p.Stage("bundle", 5)
	p.BundleBytes(1024, 4096)
	bar(p.pkgBar, "bundle 1.00 KiB / 4.00 KiB written")
}

// TestSyncProgressJSON: every line is a JSON object; rejections are events.
func TestSyncProgressJSON(t *testing.T) {
	var b bytes.Buffer
	p := newSyncProgress(&b, "json")
	p.Stage("resolve", 1)
	p.Package(mirror.PackageResult{Source: "s", Name: "x", Status: mirror.StatusRejected, Reason: "key not allowed"})
	p.Stop()
	var events []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		events = append(events, v["event"].(string))
		if v["event"] == "rejected" && (v["package"] != "x" || v["reason"] != "key not allowed") {
			t.Fatalf("rejected event = %v", v)
		}
	}
	if strings.Join(events, ",") != "progress,rejected" {
		t.Fatalf("events = %v", events)
	}
}
