package bundle

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	key := testKey(t, 1)
	const part = 64 << 10 // part file size in the split cases
	payload := int64(part - PartHeaderSize)
	cases := []struct {
		name  string
		sizes []int
		split int64
	}{
		{"empty bundle", nil, 0},
		{"empty blob", []int{0}, 0},
		{"one byte", []int{1}, 0},
		{"boundaries", []int{0, 1, 511, 512, 513, 4095, 4096, 4097}, 0},
		{"many blobs", manySizes(300, 3000), 0},
		{"large blob", []int{3 << 20}, 0},
		{"split small", []int{1, 100}, part},
		{"split many", manySizes(200, 2000), part},
		{"split payload-1", []int{int(payload) - 1}, part},
		{"split payload", []int{int(payload)}, part},
		{"split payload+1", []int{int(payload) + 1}, part},
		{"split large", []int{1 << 20, 300 << 10}, part},
		{"split bigger than stream", []int{10}, 1 << 30},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			blobs := testBlobs(3, c.sizes...)
			w, m := writeTest(t, key, 7, blobs, Options{MaxPartSize: c.split})
			for _, p := range w.Paths {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if c.split > 0 && fi.Size() > c.split {
					t.Errorf("%s is %d bytes, more than the part size %d", p, fi.Size(), c.split)
				}
			}
			if c.split > 0 && int64(len(w.Paths)-1) != (w.Size+payload-1)/payload {
				t.Errorf("%d parts for %d bytes of %d-byte payloads", len(w.Paths)-1, w.Size, payload)
			}
			// Parts in reverse order: the reader orders them.
			paths := bundlePaths(w)
			rev := make([]string, len(paths))
			for i, p := range paths {
				rev[len(paths)-1-i] = p
			}
			got, gotBlobs, err := readAll(rev, key.Public(), Limits{})
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			if got.ID != m.ID || got.Sequence != 7 || len(got.Blobs) != len(blobs) {
				t.Fatalf("manifest read back differs: %+v", got)
			}
			if len(gotBlobs) != len(blobs) {
				t.Fatalf("%d blobs read, %d written", len(gotBlobs), len(blobs))
			}
			for i := range blobs {
				if !bytes.Equal(gotBlobs[i], blobs[i]) {
					t.Fatalf("blob %d differs", i)
				}
			}
		})
	}
}

func manySizes(n, max int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1 + (i*7919)%max
	}
	return s
}

func TestWriteRefusesExisting(t *testing.T) {
	key := testKey(t, 1)
	dir := t.TempDir()
	blobs := testBlobs(1, 10)
	if _, err := Write(context.Background(), dir, "b", testManifest(1, blobs), key, mapSource(blobs), Options{}); err != nil {
		t.Fatal(err)
	}
	before := mustRead(t, filepath.Join(dir, "b.tar.zst"))
	_, err := Write(context.Background(), dir, "b", testManifest(2, blobs), key, mapSource(blobs), Options{})
	if !os.IsExist(err) && !isAny(err, os.ErrExist) {
		t.Fatalf("second Write: %v, want os.ErrExist", err)
	}
	if !bytes.Equal(before, mustRead(t, filepath.Join(dir, "b.tar.zst"))) {
		t.Fatal("existing bundle was changed")
	}
}
