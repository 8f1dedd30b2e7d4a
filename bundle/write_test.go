package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mirror-tool/mirror/internal/atomicfile"
)

// assertEmpty fails unless dir holds no file at all (not even a
// temporary one).
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind: %s", e.Name())
	}
}

type failingReader struct {
	r    io.Reader
	left int
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, f.err
	}
	if len(p) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= n
	return n, err
}

func TestWriteFailuresLeaveNothing(t *testing.T) {
	key := testKey(t, 1)
	blobs := testBlobs(6, 100, 200000, 300)
	errDisk := errors.New("disk on fire")
	cases := []struct {
		name string
		src  func(good BlobSource) BlobSource
		ctx  func() context.Context
		want error
	}{
		{"blob shorter than listed", func(good BlobSource) BlobSource {
			return func(s string) (io.ReadCloser, error) {
				rc, _ := good(s)
				b, _ := io.ReadAll(rc)
				return io.NopCloser(bytes.NewReader(b[:len(b)-1])), nil
			}
		}, nil, ErrHashMismatch},
		{"blob longer than listed", func(good BlobSource) BlobSource {
			return func(s string) (io.ReadCloser, error) {
				rc, _ := good(s)
				b, _ := io.ReadAll(rc)
				return io.NopCloser(bytes.NewReader(append(b, 'x'))), nil
			}
		}, nil, ErrHashMismatch},
		{"blob content differs", func(good BlobSource) BlobSource {
			return func(s string) (io.ReadCloser, error) {
				rc, _ := good(s)
				b, _ := io.ReadAll(rc)
				b[len(b)/2] ^= 1
				return io.NopCloser(bytes.NewReader(b)), nil
			}
		}, nil, ErrHashMismatch},
		{"blob missing", func(good BlobSource) BlobSource {
			return func(s string) (io.ReadCloser, error) { return nil, os.ErrNotExist }
		}, nil, os.ErrNotExist},
		{"read error mid-blob", func(good BlobSource) BlobSource {
			return func(s string) (io.ReadCloser, error) {
				rc, _ := good(s)
				return io.NopCloser(&failingReader{r: rc, left: 50, err: errDisk}), nil
			}
		}, nil, errDisk},
		{"cancelled", nil, func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled},
	}
	for _, c := range cases {
		for _, split := range []int64{0, 8192} {
			t.Run(c.name, func(t *testing.T) {
				dir := t.TempDir()
				src := mapSource(blobs)
				if c.src != nil {
					src = c.src(src)
				}
				ctx := context.Background()
				if c.ctx != nil {
					ctx = c.ctx()
				}
				w, err := Write(ctx, dir, "b", testManifest(1, blobs), key, src, Options{MaxPartSize: split})
				if !errors.Is(err, c.want) || w != nil {
					t.Fatalf("Write: %v, %v; want %v", w, err, c.want)
				}
				if c.want == ErrHashMismatch {
					var be *BlobError
					if !errors.As(err, &be) {
						t.Fatalf("error %q names no blob", err)
					}
				}
				assertEmpty(t, dir)
			})
		}
	}
}

func TestWriteRefusesBadInput(t *testing.T) {
	key := testKey(t, 1)
	blobs := testBlobs(6, 10)
	for _, c := range []struct {
		name  string
		bname string
		edit  func(m *Manifest)
		opt   Options
		want  error
	}{
		{"invalid manifest", "b", func(m *Manifest) { m.Tree[0].Path = "../x" }, Options{}, ErrUnsafePath},
		{"other operator key", "b", func(m *Manifest) { m.OperatorKeyID = "0123456789ABCDEF" }, Options{}, ErrSignature},
		{"name with slash", "a/b", nil, Options{}, nil},
		{"hidden name", ".b", nil, Options{}, nil},
		{"tiny part size", "b", nil, Options{MaxPartSize: PartHeaderSize}, nil},
		{"level out of range", "b", nil, Options{Level: 23}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			m := testManifest(1, blobs)
			if c.edit != nil {
				c.edit(m)
			}
			_, err := Write(context.Background(), dir, c.bname, m, key, mapSource(blobs), c.opt)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("Write: %v, want an error (%v)", err, c.want)
			}
			assertEmpty(t, dir)
		})
	}
}

// TestDeterministicLarge: a bundle of several zstd blocks is the same bytes
// whatever the encoder concurrency.
func TestDeterministicLarge(t *testing.T) {
	key := testKey(t, 1)
	blobs := testBlobs(8, 3<<20, 1<<20, 100)
	blobs = append(blobs, bytes.Repeat([]byte("text compresses "), 1<<16))
	var first []byte
	for _, conc := range []int{1, 2, 3, 8} {
		w, _ := writeTest(t, key, 1, blobs, Options{Concurrency: conc})
		got := mustRead(t, w.Paths[0])
		if first == nil {
			first = got
		} else if !bytes.Equal(first, got) {
			t.Fatalf("concurrency %d gives other bytes than concurrency 1", conc)
		}
	}
}

// TestWriteOutputFailureLeavesNothing makes the bundle file's writes fail
// (the first one, or one in the middle of a multi-chunk stream) and checks
// that Write reports the error and leaves no file behind, whole or split.
func TestWriteOutputFailureLeavesNothing(t *testing.T) {
	key := testKey(t, 1)
	// Incompressible, so that the stream spans several chunks.
	blobs := testBlobs(7, 3*chunkSize/2, 2*chunkSize, 100)
	errDisk := errors.New("disk full")
	orig := writeChunk
	t.Cleanup(func() { writeChunk = orig })
	for _, failAt := range []int64{0, chunkSize + 1, 3 * chunkSize} {
		for _, split := range []int64{0, chunkSize/2 + PartHeaderSize} {
			t.Run(fmt.Sprintf("at %d split %d", failAt, split), func(t *testing.T) {
				var seen atomic.Int64
				writeChunk = func(f *atomicfile.File, b []byte) (int, error) {
					if seen.Add(int64(len(b))) > failAt {
						return 0, errDisk
					}
					return f.Write(b)
				}
				dir := t.TempDir()
				w, err := Write(context.Background(), dir, "b", testManifest(1, blobs), key, mapSource(blobs), Options{MaxPartSize: split})
				if !errors.Is(err, errDisk) || w != nil {
					t.Fatalf("Write: %v, %v; want %v", w, err, errDisk)
				}
				if be := (*BlobError)(nil); errors.As(err, &be) {
					t.Fatalf("the disk's error is blamed on blob %s: %v", be.SHA256, err)
				}
				if !strings.Contains(err.Error(), filepath.Join(dir, "b.tar.zst")) {
					t.Fatalf("error %q does not name the bundle file", err)
				}
				if seen.Load() <= failAt {
					t.Fatalf("the stream was %d bytes, never reached byte %d", seen.Load(), failAt)
				}
				assertEmpty(t, dir)
			})
		}
	}
}
