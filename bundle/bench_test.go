package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/internal/atomicfile"
	"github.com/mirror-tool/mirror/internal/minisign"
)

// The benchmark set: 2,000 blobs of 256 KiB of random (incompressible)
// bytes, as files in a folder, so that scripts/bench/bundle.sh can run
// tar | zstd over the very same files. BUNDLE_BENCH_DIR names the folder
// (made when empty); the default is a temporary one.
const (
	benchBlobs    = 2000
	benchBlobSize = 256 << 10
)

func benchSet(b *testing.B) (dir string, m *Manifest) {
	return makeBenchSet(b, "BUNDLE_BENCH_DIR", "mirror-bundle-bench", benchBlobs, benchBlobSize)
}

// The small set: 20,000 blobs of 8 KiB (a sync of many small packages),
// in BUNDLE_BENCH_SMALL_DIR or a temporary folder.
const (
	benchSmallBlobs    = 20000
	benchSmallBlobSize = 8 << 10
)

func benchSmallSet(b *testing.B) (dir string, m *Manifest) {
	return makeBenchSet(b, "BUNDLE_BENCH_SMALL_DIR", "mirror-bundle-bench-small", benchSmallBlobs, benchSmallBlobSize)
}

// makeBenchSet fills the folder named by the environment variable env (or
// TMPDIR/name), when it does not hold them already, with n random blobs of
// size bytes named by their SHA-256, and returns it with the manifest that
// carries them.
func makeBenchSet(b *testing.B, env, name string, n, size int) (string, *Manifest) {
	b.Helper()
	dir := os.Getenv(env)
	if dir == "" {
		dir = filepath.Join(os.TempDir(), name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(names) != n {
		rng := rand.NewChaCha8([32]byte{'b', 'e', 'n', 'c', 'h'})
		buf := make([]byte, size)
		for i := 0; i < n; i++ {
			rng.Read(buf)
			s := sha256.Sum256(buf)
			if err := atomicfile.WriteFile(filepath.Join(dir, hex.EncodeToString(s[:])), buf, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		names, _ = filepath.Glob(filepath.Join(dir, "*"))
		if len(names) != n {
			b.Fatalf("%s holds %d files, want %d: use an empty folder", dir, len(names), n)
		}
	}
	sort.Strings(names)
	m := &Manifest{Sequence: 1, Created: testTime, Expires: testTime.Add(time.Hour), ToolVersion: "bench",
		Sources: []Source{{Name: "s", Type: "files", URL: "https://example.org/"}}}
	for i, n := range names {
		sum := filepath.Base(n)
		p := fmt.Sprintf("s/f%05d", i)
		m.Tree = append(m.Tree, Entry{Path: p, SHA256: sum, Size: int64(size)})
		m.Blobs = append(m.Blobs, Blob{SHA256: sum, Size: int64(size)})
	}
	return dir, m
}

func fileSource(dir string) BlobSource {
	return func(sum string) (io.ReadCloser, error) { return os.Open(filepath.Join(dir, sum)) }
}

func copyManifest(m *Manifest) *Manifest {
	c := *m
	c.ID, c.Format, c.OperatorKeyID = "", "", ""
	return &c
}

// BenchmarkWrite writes the whole set as one bundle (fsync included).
func BenchmarkWrite(b *testing.B) { benchWrite(b, Options{}) }

// BenchmarkWriteSplit writes it in parts of 64 MiB (8 parts).
func BenchmarkWriteSplit(b *testing.B) { benchWrite(b, Options{MaxPartSize: 64 << 20}) }

// BenchmarkWriteSmall writes the small set (20,000 x 8 KiB) as one bundle:
// the cost per blob rather than per byte.
func BenchmarkWriteSmall(b *testing.B) {
	dir, m := benchSmallSet(b)
	benchWriteSet(b, dir, m, Options{})
}

func benchWrite(b *testing.B, opt Options) {
	dir, m := benchSet(b)
	benchWriteSet(b, dir, m, opt)
}

func benchWriteSet(b *testing.B, dir string, m *Manifest, opt Options) {
	key := testKey(b, 1)
	out := b.TempDir()
	b.SetBytes(m.TotalBlobSize())
	b.ReportAllocs()
	defer reportCPU(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("b%d", i)
		w, err := Write(context.Background(), out, name, copyManifest(m), key, fileSource(dir), opt)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(w.Size)/float64(m.TotalBlobSize()), "out/in")
		for _, p := range w.Paths {
			os.Remove(p)
		}
		b.StartTimer()
	}
}

// BenchmarkRead opens the bundle with full verification (operator
// signature, every member and its canonical tar header, every blob's
// SHA-256, the frame, no trailing data) and reads every blob, discarding it.
func BenchmarkRead(b *testing.B) {
	benchRead(b, func(string) (io.WriteCloser, func() error, error) { return nopWC{io.Discard}, nil, nil })
}

// BenchmarkReadToFiles is BenchmarkRead that also writes every blob to a
// file of its own (as tar -x does), without fsync.
func BenchmarkReadToFiles(b *testing.B) {
	var out string
	benchRead(b, func(sum string) (io.WriteCloser, func() error, error) {
		if out == "" {
			out = b.TempDir()
		}
		f, err := os.Create(filepath.Join(out, sum))
		return f, nil, err
	})
}

type nopWC struct{ io.Writer }

func (nopWC) Close() error { return nil }

func benchRead(b *testing.B, create func(sum string) (io.WriteCloser, func() error, error)) {
	dir, m := benchSet(b)
	key := testKey(b, 1)
	bdir := filepath.Join(os.TempDir(), "mirror-bundle-bench-out")
	os.RemoveAll(bdir)
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(bdir)
	w, err := Write(context.Background(), bdir, "b", copyManifest(m), key, fileSource(dir), Options{})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	b.SetBytes(benchBlobs * benchBlobSize)
	b.ReportAllocs()
	defer reportCPU(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := Open(context.Background(), w.Paths[:1], key.Public(), Limits{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			info, br, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			f, _, err := create(info.SHA256)
			if err != nil {
				b.Fatal(err)
			}
			// struct{ io.Writer } hides *os.File's ReadFrom, whose fallback
			// copies in 32 KiB writes; the blob is written in 256 KiB ones.
			if _, err := io.CopyBuffer(struct{ io.Writer }{f}, br, buf); err != nil {
				b.Fatal(err)
			}
			f.Close()
			n++
		}
		if n != benchBlobs {
			b.Fatalf("%d blobs read", n)
		}
		r.Close()
	}
}

// reportCPU reports the process's user+system CPU seconds per operation
// (all goroutines), a measure that the machine's load does not skew.
func reportCPU(b *testing.B) func() {
	cpu := func() float64 {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	start := cpu()
	return func() { b.ReportMetric((cpu()-start)/float64(b.N), "cpu-s/op") }
}

// BenchmarkWriteFloor is a bound, not a writer: it reads the same set as
// BenchmarkWrite and does only the hashing that Write must do and
// `tar | zstd` does not, each hash on a goroutine of its own (both cores
// busy at once): the SHA-256 of every blob (the check against the signed
// manifest) and one BLAKE2b-512 over all the bytes (the prehash of the
// .minisig that stock `minisign -V` checks; Write computes it over the
// compressed stream, which is as long as these incompressible blobs). No
// compression, no tar headers, no output file and no output SHA-256.
// Write cannot be faster than this on the same machine, so
// scripts/bench/bundle.sh prints it beside the write target.
func BenchmarkWriteFloor(b *testing.B) {
	dir, m := benchSet(b)
	b.SetBytes(m.TotalBlobSize())
	b.ReportAllocs()
	defer reportCPU(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := hashFloor(dir, m); err != nil {
			b.Fatal(err)
		}
	}
}

// hashFloor reads every blob of m from dir whole and hands it to two
// goroutines: one checks the blob's SHA-256, the other feeds the BLAKE2b-512
// of the whole stream. At most floorBufs blobs are in flight.
func hashFloor(dir string, m *Manifest) error {
	type blob struct {
		buf  []byte
		sum  string
		refs atomic.Int32
	}
	const floorBufs = 16
	free := make(chan *blob, floorBufs)
	for range floorBufs {
		free <- &blob{}
	}
	done := func(b *blob) {
		if b.refs.Add(-1) == 0 {
			free <- b
		}
	}
	shaQ, b2Q := make(chan *blob, floorBufs), make(chan *blob, floorBufs)
	var mismatch atomic.Pointer[string]
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for b := range shaQ {
			if s := sha256.Sum256(b.buf); hex.EncodeToString(s[:]) != b.sum {
				mismatch.CompareAndSwap(nil, &b.sum)
			}
			done(b)
		}
	}()
	go func() {
		defer wg.Done()
		d := minisign.NewDigest()
		for b := range b2Q {
			d.Write(b.buf)
			done(b)
		}
		d.Sum(nil)
	}()
	var err error
	for _, bl := range m.Blobs {
		b := <-free
		if int64(cap(b.buf)) < bl.Size {
			b.buf = make([]byte, bl.Size)
		}
		b.buf, b.sum = b.buf[:bl.Size], bl.SHA256
		var f *os.File
		if f, err = os.Open(filepath.Join(dir, bl.SHA256)); err == nil {
			_, err = io.ReadFull(f, b.buf)
			f.Close()
		}
		if err != nil {
			break
		}
		b.refs.Store(2)
		shaQ <- b
		b2Q <- b
	}
	close(shaQ)
	close(b2Q)
	wg.Wait()
	if err != nil {
		return err
	}
	if s := mismatch.Load(); s != nil {
		return fmt.Errorf("blob %s does not hash to its name", *s)
	}
	return nil
}
