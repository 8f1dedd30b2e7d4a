package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fuzzSeeds builds a real repository and returns its own files as seeds:
// the generation record, state.json, receipt.json and import.log.
func fuzzSeeds(f *testing.F) (rec, state, receipt, log []byte) {
	dir := f.TempDir()
	r, err := Open(context.Background(), dir)
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close()
	a, b := mkblob("alpha"), mkblob("bravo")
	in := r.Ingest(context.Background())
	for _, x := range []blob{a, b} {
		if err := in.Add(x.sum, int64(len(x.data)), bytes.NewReader(x.data)); err != nil {
			f.Fatal(err)
		}
	}
	if err := in.Wait(); err != nil {
		f.Fatal(err)
	}
	for seq, files := range []map[string]blob{{"tools/a": a}, {"tools/a": a, "debian/dists/x/InRelease": b}} {
		if err := r.Publish(context.Background(), record(uint64(seq+1), files), nil); err != nil {
			f.Fatal(err)
		}
		r.AppendLog(LogEntry{Sequence: uint64(seq + 1), Result: ResultImported, Message: "ok"})
	}
	if _, _, err := r.Collect(context.Background(), 3); err != nil {
		f.Fatal(err)
	}
	read := func(p string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || len(data) == 0 {
			f.Fatalf("seed %s: %v", p, err)
		}
		return data
	}
	return read("generations/2.json"), read(StateFile), read(ReceiptFile), read(LogFile)
}

func FuzzParseRecord(f *testing.F) {
	rec, _, _, _ := fuzzSeeds(f)
	f.Add(rec)
	f.Add([]byte(`{"format":"mirror-generation/v1","sequence":1,"tree":[{"path":"../x","sha256":"` + mkblob("x").sum + `","size":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseRecord(data)
		if err != nil {
			if got != nil {
				t.Fatal("record returned with an error")
			}
			return
		}
		if CheckTree(got.Tree) != nil || got.Sequence == 0 {
			t.Fatal("accepted record violates its invariants")
		}
		again, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseRecord(again)
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseState(f *testing.F) {
	_, st, _, _ := fuzzSeeds(f)
	f.Add(st)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseState(data)
		if err != nil {
			if got != nil {
				t.Fatal("state returned with an error")
			}
			return
		}
		again, _ := json.Marshal(got)
		if back, err := ParseState(again); err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// The receipt crosses the gap on media: untrusted input to `mirror sync`.
func FuzzParseReceipt(f *testing.F) {
	_, _, rc, _ := fuzzSeeds(f)
	f.Add(rc)
	f.Add([]byte(`{"format":"mirror-receipt/v1","sequence":3,"bundle_id":"x","blobs":["AB"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseReceipt(data)
		if err != nil {
			if got != nil {
				t.Fatal("receipt returned with an error")
			}
			return
		}
		for _, b := range got.Blobs {
			if !ValidSum(b) {
				t.Fatalf("accepted blob name %q", b)
			}
		}
		again, _ := json.Marshal(got)
		if back, err := ParseReceipt(again); err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseLog(f *testing.F) {
	_, _, _, log := fuzzSeeds(f)
	f.Add(log)
	f.Add(append(log, []byte(`{"time":"2026-01-0`)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		all := ParseLog(data, 0)
		last := ParseLog(data, 2)
		if len(last) > 2 || (len(all) >= 2 && len(last) != 2) {
			t.Fatalf("last 2 of %d: %d", len(all), len(last))
		}
		if len(last) > 0 && !reflect.DeepEqual(last, all[len(all)-len(last):]) {
			t.Fatal("the last entries differ from the tail of all entries")
		}
		for _, e := range all {
			if e.Result == "" {
				t.Fatal("entry without result")
			}
		}
	})
}

func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"tools/hello/hello-2.12.tar.gz", "debian/dists/bookworm/InRelease", "../x", "a//b", "/etc", "a\\b", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) != nil {
			return
		}
		// Accepted: stays inside the tree when joined.
		dir := "/srv/gen"
		j := filepath.Join(dir, p)
		if rel, err := filepath.Rel(dir, j); err != nil || rel != filepath.FromSlash(p) || !filepath.IsLocal(p) {
			t.Fatalf("accepted %q escapes or is not canonical (%q)", p, rel)
		}
	})
}
