package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror"
)

// TestSyncProgressPlain: off a terminal, a line at the end of each stage
// (with what the stage did: no "0/3" line at its start) and at most one per
// interval while it lasts; rejected and received count the whole run.
func TestSyncProgressPlain(t *testing.T) {
	var b bytes.Buffer
	p := newSyncProgress(&b, "text")
	if p.pool != nil {
		t.Fatal("bars drawn on a buffer")
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	p.last = now
	lines := func(want ...string) {
		t.Helper()
		got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if b.Len() == 0 {
			got = nil
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("lines = %q, want %q", got, want)
		}
		b.Reset()
	}
	p.Stage("resolve", 2)
	p.Bytes(565)
	p.Package(mirror.PackageResult{Source: "s", Name: "gone", Status: mirror.StatusRejected, Reason: "listed but missing"})
	lines()
	p.Stage("fetch", 3)
	lines("mirror: sync: resolve 2 sources, 1 rejected, 565 B received")
	p.Bytes(2048)
	p.Package(mirror.PackageResult{Source: "s", Name: "a", Status: mirror.StatusNew})
	lines() // before the interval
	now = now.Add(progressInterval)
	p.Package(mirror.PackageResult{Source: "s", Name: "b", Status: mirror.StatusRejected, Reason: "bad"})
	lines("mirror: sync: fetch 2/3 packages, 2 rejected, 2.6 KiB received")
	p.Bytes(200 << 10)
	p.Package(mirror.PackageResult{Source: "s", Name: "c", Status: mirror.StatusNew})
	p.Stage("bundle", 5)
	lines("mirror: sync: fetch 3/3 packages, 2 rejected, 202.6 KiB received")
	now = now.Add(progressInterval)
	p.BundleBytes(1024, 4096)
	lines("mirror: sync: bundle 1.0 KiB of 4.0 KiB of package data written")
	p.BundleBytes(4096, 4096)
	p.Stop()
	lines("mirror: sync: bundle 4.0 KiB of 4.0 KiB of package data written")
	p.Stop()
	lines()
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
	if strings.Join(events, ",") != "rejected,progress" {
		t.Fatalf("events = %v", events)
	}
}
