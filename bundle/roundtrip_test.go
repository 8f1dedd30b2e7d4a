package bundle

import (
	"bytes"
	"context"
	"errors"
	"io"
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
	// Other levels (window 8 MiB) over a stream of several blocks.
	for _, level := range []int{2, 3, 9, 19} {
		blobs := testBlobs(4, 1<<20, 500000)
		blobs = append(blobs, bytes.Repeat([]byte("compressible text "), 200000))
		w, _ := writeTest(t, key, 1, blobs, Options{Level: level})
		if _, got, err := readAll(bundlePaths(w), key.Public(), Limits{}); err != nil || len(got) != 3 {
			t.Fatalf("level %d: read back: %v", level, err)
		}
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

// TestInspect reads the manifest without a key, also of a bundle whose
// signature is by another key, which Open refuses.
func TestInspect(t *testing.T) {
	blobs := testBlobs(2, 10, 20)
	w, m := writeTest(t, testKey(t, 7), 4, blobs, Options{})
	got, err := Inspect(context.Background(), bundlePaths(w), Limits{})
	if err != nil || got.ID != m.ID || len(got.Packages) != 2 {
		t.Fatalf("Inspect: %+v, %v", got, err)
	}
	if _, err := Open(context.Background(), bundlePaths(w), testKey(t, 8).Public(), Limits{}); !errors.Is(err, ErrSignature) {
		t.Fatalf("Open with another key: %v", err)
	}
	ws, _ := writeTest(t, testKey(t, 7), 4, blobs, Options{MaxPartSize: 5000})
	parts := bundlePaths(ws)
	got, err = Inspect(context.Background(), []string{parts[2], parts[0], parts[1]}, Limits{})
	if err != nil || got.ID != m.ID {
		t.Fatalf("Inspect of parts: %v", err)
	}
	if _, err := Inspect(context.Background(), parts[:1], Limits{}); !errors.Is(err, ErrPart) {
		t.Fatalf("Inspect of one part of several: %v, want ErrPart", err)
	}
}

func TestCancel(t *testing.T) {
	key := testKey(t, 1)
	blobs := testBlobs(2, 100000, 100000)
	w, _ := writeTest(t, key, 1, blobs, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Open(ctx, bundlePaths(w), key.Public(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, br, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(br); !errors.Is(err, context.Canceled) {
		t.Fatalf("blob read after cancel: %v", err)
	}
	if _, _, err := r.Next(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel: %v", err)
	}
}

// TestSplitBoundaries splits a stream of known size S at payloads of S-1,
// S, S+1 and S/k bytes: the last part is then 1 byte, exactly full, or 1
// byte short, and no empty part is ever written.
func TestSplitBoundaries(t *testing.T) {
	key := testKey(t, 1)
	blobs := testBlobs(9, 5000, 70000, 1)
	whole, _ := writeTest(t, key, 2, blobs, Options{})
	S := whole.Size
	for _, c := range []struct {
		payload int64
		parts   int
		last    int64
	}{
		{S - 1, 2, 1},
		{S, 1, S},
		{S + 1, 1, S},
		{(S + 2) / 3, 3, S - 2*((S+2)/3)},
		{1, int(S), 1},
	} {
		if c.parts > MaxParts {
			dir := t.TempDir()
			_, err := Write(context.Background(), dir, "b", testManifest(2, blobs), key, mapSource(blobs), Options{MaxPartSize: c.payload + PartHeaderSize})
			if !errors.Is(err, ErrLimit) {
				t.Fatalf("payload %d: %d parts: %v, want ErrLimit", c.payload, c.parts, err)
			}
			assertEmpty(t, dir)
			continue
		}
		w, _ := writeTest(t, key, 2, blobs, Options{MaxPartSize: c.payload + PartHeaderSize})
		paths := bundlePaths(w)
		if len(paths) != c.parts || w.BLAKE2b512 != whole.BLAKE2b512 || w.Size != S {
			t.Fatalf("payload %d: %d parts (want %d), joined %s/%d (want %s/%d)", c.payload, len(paths), c.parts, w.BLAKE2b512, w.Size, whole.BLAKE2b512, S)
		}
		fi, err := os.Stat(paths[len(paths)-1])
		if err != nil || fi.Size() != PartHeaderSize+c.last {
			t.Fatalf("payload %d: last part %v bytes, want %d", c.payload, fi.Size(), PartHeaderSize+c.last)
		}
		if _, got, err := readAll(paths, key.Public(), Limits{}); err != nil || len(got) != len(blobs) {
			t.Fatalf("payload %d: read back: %v", c.payload, err)
		}
	}
}
