package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshot lists every file under the store (blobs and temporaries) with
// its content, so tests can assert that a failure changed nothing.
func snapshot(t *testing.T, s *Store) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.Dir(), p)
		m[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func assertSame(t *testing.T, before, after map[string]string) {
	t.Helper()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("store changed:\nbefore %v\nafter  %v", keys(before), keys(after))
	}
}

func keys(m map[string]string) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

func TestPutOpenRoundTrip(t *testing.T) {
	s := newStore(t)
	data := []byte("hello, air gap\n")
	sum := sumOf(data)
	if err := s.Put(context.Background(), bytes.NewReader(data), sum, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(s.Dir(), "sha256", sum[:2], sum)
	if s.Path(sum) != want {
		t.Fatalf("Path = %q, want %q", s.Path(sum), want)
	}
	if ok, err := s.Has(sum); !ok || err != nil {
		t.Fatalf("Has = %v, %v", ok, err)
	}
	f, err := s.Open(sum)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("content %q", got)
	}
	// The stored blob is what sha256sum would name it.
	if b, _ := os.ReadFile(want); sumOf(b) != sum {
		t.Fatal("blob on disk does not hash to its name")
	}
	if ents, _ := os.ReadDir(s.TempDir()); len(ents) != 0 {
		t.Fatalf("tmp not empty: %v", ents)
	}
}

func TestPutUnknownSize(t *testing.T) {
	s := newStore(t)
	data := bytes.Repeat([]byte("x"), 3*copyBuf+7)
	sum := sumOf(data)
	if err := s.Put(context.Background(), bytes.NewReader(data), sum, -1); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(sum); !ok {
		t.Fatal("not stored")
	}
}

func TestPutMismatchLeavesNothing(t *testing.T) {
	data := []byte("the real package")
	sum := sumOf(data)
	other := []byte("the evil package")
	cases := []struct {
		name string
		body []byte
		size int64
		got  string // expected MismatchError.Got
	}{
		{"wrong content, right size", other, int64(len(data)), sumOf(other)},
		{"wrong content, unknown size", other, -1, sumOf(other)},
		{"right content, short size", data, int64(len(data)) - 1, ""},
		{"right content, long size", data, int64(len(data)) + 1, ""},
		{"empty", nil, int64(len(data)), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			before := snapshot(t, s)
			err := s.Put(context.Background(), bytes.NewReader(tc.body), sum, tc.size)
			if !errors.Is(err, ErrMismatch) {
				t.Fatalf("err = %v, want ErrMismatch", err)
			}
			var me *MismatchError
			if !errors.As(err, &me) || me.Want != sum || me.Got != tc.got {
				t.Fatalf("MismatchError = %+v", me)
			}
			if ok, _ := s.Has(sum); ok {
				t.Fatal("mismatching content is visible")
			}
			assertSame(t, before, snapshot(t, s))
		})
	}
}

func TestAddSizeLimit(t *testing.T) {
	for _, tc := range []struct {
		n, limit int64
		ok       bool
	}{
		{0, 0, true},
		{10, 10, true},
		{11, 10, false},
		{10, 9, false},
		{int64(copyBuf) + 1, int64(copyBuf), false},
		{int64(copyBuf), int64(copyBuf), true},
	} {
		t.Run(fmt.Sprintf("%d-of-%d", tc.n, tc.limit), func(t *testing.T) {
			s := newStore(t)
			before := snapshot(t, s)
			data := bytes.Repeat([]byte{'a'}, int(tc.n))
			sum, size, err := s.Add(context.Background(), bytes.NewReader(data), tc.limit)
			if !tc.ok {
				if !errors.Is(err, ErrTooLarge) || sum != "" || size != 0 {
					t.Fatalf("Add = %q, %d, %v; want ErrTooLarge and nothing", sum, size, err)
				}
				assertSame(t, before, snapshot(t, s))
				return
			}
			if err != nil || sum != sumOf(data) || size != tc.n {
				t.Fatalf("Add = %q, %d, %v", sum, size, err)
			}
			if ok, _ := s.Has(sum); !ok {
				t.Fatal("not stored")
			}
		})
	}
}

// endless never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'z'
	}
	return len(p), nil
}

func TestAddEndlessReaderBounded(t *testing.T) {
	s := newStore(t)
	_, _, err := s.Add(context.Background(), endless{}, 1<<20)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	// Put with a known size also stops at size+1.
	err = s.Put(context.Background(), endless{}, strings.Repeat("0", 64), 1<<20)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("err = %v", err)
	}
}

func TestConcurrentPutSameSum(t *testing.T) {
	s := newStore(t)
	data := bytes.Repeat([]byte("concurrent "), 50000)
	sum := sumOf(data)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Slow readers so that the writers overlap.
			errs <- s.Put(context.Background(), io.LimitReader(&slowReader{data: data}, int64(len(data))), sum, int64(len(data)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(s.Path(sum))
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("blob wrong after concurrent puts: %v", err)
	}
	if ents, _ := os.ReadDir(s.TempDir()); len(ents) != 0 {
		t.Fatalf("tmp not empty: %d files", len(ents))
	}
}

type slowReader struct {
	data []byte
	off  int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 4096)], r.data[r.off:])
	r.off += n
	return n, nil
}

func TestMalformedSums(t *testing.T) {
	s := newStore(t)
	good := sumOf([]byte("x"))
	bad := []string{
		"", "../x", "../../etc/passwd", strings.ToUpper(good), good[:63], good + "0",
		"ab/" + good[3:], "..", good[:62] + "/.", "sha256:" + good[7:], good[:63] + "g",
		good[:31] + "\x00" + good[32:],
	}
	for _, sum := range bad {
		if p := s.Path(sum); p != "" {
			t.Errorf("Path(%q) = %q, want \"\"", sum, p)
		}
		if _, err := s.Has(sum); !errors.Is(err, ErrBadSum) {
			t.Errorf("Has(%q): %v", sum, err)
		}
		if err := s.Put(context.Background(), strings.NewReader("x"), sum, 1); !errors.Is(err, ErrBadSum) {
			t.Errorf("Put(%q): %v", sum, err)
		}
		if _, err := s.Open(sum); !errors.Is(err, ErrBadSum) {
			t.Errorf("Open(%q): %v", sum, err)
		}
		if err := s.Remove(sum); !errors.Is(err, ErrBadSum) {
			t.Errorf("Remove(%q): %v", sum, err)
		}
		if err := s.Adopt(filepath.Join(s.TempDir(), "nothing"), sum, 1); !errors.Is(err, ErrBadSum) {
			t.Errorf("Adopt(%q): %v", sum, err)
		}
	}
}

// failingWriter fails with ENOSPC after n bytes.
type failingWriter struct {
	w io.Writer
	n int
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		m, _ := f.w.Write(p[:f.n])
		f.n = 0
		return m, syscall.ENOSPC
	}
	f.n -= len(p)
	return f.w.Write(p)
}

func TestWriteFailureLeavesStoreAsItWas(t *testing.T) {
	s := newStore(t)
	old := []byte("already here")
	if err := s.Put(context.Background(), bytes.NewReader(old), sumOf(old), -1); err != nil {
		t.Fatal(err)
	}
	s.wrap = func(w io.Writer) io.Writer { return &failingWriter{w: w, n: 1000} }
	before := snapshot(t, s)
	data := bytes.Repeat([]byte("disk full "), 1000)
	err := s.Put(context.Background(), bytes.NewReader(data), sumOf(data), int64(len(data)))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put err = %v, want ENOSPC", err)
	}
	assertSame(t, before, snapshot(t, s))
	_, _, err = s.Add(context.Background(), bytes.NewReader(data), 1<<20)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Add err = %v, want ENOSPC", err)
	}
	assertSame(t, before, snapshot(t, s))
}

func TestCancelledPutLeavesNothing(t *testing.T) {
	s := newStore(t)
	before := snapshot(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := []byte("x")
	if err := s.Put(ctx, bytes.NewReader(data), sumOf(data), 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	assertSame(t, before, snapshot(t, s))
}

func TestAdopt(t *testing.T) {
	s := newStore(t)
	data := []byte("downloaded and verified")
	sum := sumOf(data)
	tmp := filepath.Join(s.TempDir(), "dl-1")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Wrong size: refused, file left for the caller.
	if err := s.Adopt(tmp, sum, int64(len(data))+1); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Adopt wrong size: %v", err)
	}
	if ok, _ := s.Has(sum); ok {
		t.Fatal("visible after refused adopt")
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("refused adopt removed the file: %v", err)
	}
	if err := s.Adopt(tmp, sum, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("adopted file still at its old path: %v", err)
	}
	b, err := os.ReadFile(s.Path(sum))
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("adopted blob: %q %v", b, err)
	}
	// Adopting the same blob again is fine.
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Adopt(tmp, sum, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	// Not a regular file.
	dir := filepath.Join(s.TempDir(), "adir")
	os.Mkdir(dir, 0o755)
	if err := s.Adopt(dir, sum, 0); err == nil {
		t.Fatal("adopted a directory")
	}
}

func TestRemoveWalk(t *testing.T) {
	s := newStore(t)
	want := map[string]int64{}
	for i := 0; i < 40; i++ {
		data := []byte(strings.Repeat("b", i))
		sum, size, err := s.Add(context.Background(), bytes.NewReader(data), 100)
		if err != nil {
			t.Fatal(err)
		}
		want[sum] = size
	}
	// Junk that Walk must skip.
	os.WriteFile(filepath.Join(s.Dir(), "sha256", "zz"), []byte("junk"), 0o644)
	os.MkdirAll(filepath.Join(s.Dir(), "sha256", "00"), 0o755)
	os.WriteFile(filepath.Join(s.Dir(), "sha256", "00", "notasum"), []byte("junk"), 0o644)
	wrongShard := sumOf([]byte("wrong shard"))
	os.WriteFile(filepath.Join(s.Dir(), "sha256", "00", wrongShard), []byte("junk"), 0o644)

	got := map[string]int64{}
	var order []string
	if err := s.Walk(func(sum string, size int64) error {
		got[sum] = size
		order = append(order, sum)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Walk found %d blobs, want %d", len(got), len(want))
	}
	if !sort.StringsAreSorted(order) {
		t.Fatal("Walk not in order")
	}
	var victim string
	for sum := range want {
		victim = sum
		break
	}
	if err := s.Remove(victim); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(victim); ok {
		t.Fatal("still there after Remove")
	}
	if err := s.Remove(victim); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if _, err := s.Open(victim); !errors.Is(err, ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open removed: %v", err)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Walk(func(string, int64) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Walk did not stop: %v after %d", err, n)
	}
}

func TestOpenCleansStaleTmp(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(s.TempDir(), "put-stale")
	fresh := filepath.Join(s.TempDir(), "put-fresh")
	os.WriteFile(stale, []byte("x"), 0o644)
	os.WriteFile(fresh, []byte("x"), 0o644)
	old := time.Now().Add(-StaleTmpAge - time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale tmp kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("fresh tmp removed (a live writer's file): %v", err)
	}
}

// The blob name matches what sha256sum computes.
func TestSumMatchesSha256sum(t *testing.T) {
	s := newStore(t)
	data := []byte("cross-check with coreutils\n")
	sum, _, err := s.Add(context.Background(), bytes.NewReader(data), 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	out := runTool(t, "sha256sum", s.Path(sum))
	if got := strings.Fields(out)[0]; got != sum {
		t.Fatalf("sha256sum says %s, store named it %s", got, sum)
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed for this cross-check (scripts/test installs it): %v", name, err)
	}
	out, err := exec.Command(path, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

func TestAdoptRefusesSymlink(t *testing.T) {
	s := newStore(t)
	data := []byte("target of a link")
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, data, 0o644)
	link := filepath.Join(s.TempDir(), "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := s.Adopt(link, sumOf(data), int64(len(data))); err == nil {
		t.Fatal("adopted a symbolic link")
	}
	if ok, _ := s.Has(sumOf(data)); ok {
		t.Fatal("link visible in the store")
	}
}

func TestVerifyFindsDamage(t *testing.T) {
	s := newStore(t)
	data := []byte("bits that will rot")
	sum, _, err := s.Add(context.Background(), bytes.NewReader(data), 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(context.Background(), sum); err != nil {
		t.Fatalf("intact blob: %v", err)
	}
	p := s.Path(sum)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("bits that will r0t"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = s.Verify(context.Background(), sum)
	var me *MismatchError
	if !errors.As(err, &me) || me.Got != sumOf([]byte("bits that will r0t")) {
		t.Fatalf("damaged blob: %v", err)
	}
	if err := s.Verify(context.Background(), sumOf([]byte("absent"))); !errors.Is(err, ErrNotExist) {
		t.Fatalf("absent blob: %v", err)
	}
}

func FuzzPath(f *testing.F) {
	seeds := []string{sumOf([]byte("x")), "../x", "", strings.Repeat("a", 64), strings.Repeat("A", 64), "ab/../../../../etc/passwd" + strings.Repeat("0", 39)}
	if len(seeds) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	s, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sum string) {
		p := s.Path(sum)
		if p == "" {
			if ValidSum(sum) {
				t.Fatalf("valid sum %q refused", sum)
			}
			return
		}
		if !ValidSum(sum) {
			t.Fatalf("malformed sum %q accepted", sum)
		}
		rel, err := filepath.Rel(s.Dir(), p)
		if err != nil || rel != filepath.Join("sha256", sum[:2], sum) {
			t.Fatalf("Path(%q) = %q escapes the layout", sum, p)
		}
	})
}

func TestReadAll(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("twelve bytes")
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	if err := s.Put(context.Background(), bytes.NewReader(data), hexSum, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadAll(hexSum, 12); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll(12) = %q, %v", got, err)
	}
	if got, err := s.ReadAll(hexSum, 11); !errors.Is(err, ErrTooLarge) || got != nil {
		t.Fatalf("ReadAll(11) = %q, %v; want ErrTooLarge", got, err)
	}
	if _, err := s.ReadAll(strings.Repeat("0", 64), 100); !errors.Is(err, ErrNotExist) {
		t.Fatalf("missing blob: %v, want ErrNotExist", err)
	}
}
