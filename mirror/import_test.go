package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/mirror/repo"
	"github.com/mirror-tool/mirror/mirror/serve"
	"github.com/mirror-tool/mirror/verify"
)

var impT0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func impSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func impKey(t testing.TB, seed byte) minisign.PrivateKey {
	t.Helper()
	k, err := minisign.GenerateKey(rand.NewChaCha8([32]byte{seed, 'i'}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// impData is deterministic random content.
func impData(seed string, n int) []byte {
	var s [32]byte
	copy(s[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// impSpec describes a test bundle: the whole publish tree, and which of its
// files the bundle carries (nil: all, a full bundle).
type impSpec struct {
	seq, base        uint64
	created, expires time.Time
	files            map[string][]byte
	carry            []string
	partSize         int64
}

// impBundle writes the bundle and returns its paths (without .minisig).
func impBundle(t testing.TB, dir string, key minisign.PrivateKey, s impSpec) ([]string, *bundle.Manifest) {
	t.Helper()
	if s.created.IsZero() {
		s.created = impT0
	}
	if s.expires.IsZero() {
		s.expires = s.created.Add(30 * 24 * time.Hour)
	}
	trust := "[[trust.key]]\nname = \"k\"\n"
	m := &bundle.Manifest{Sequence: s.seq, BaseSequence: s.base, Created: s.created, Expires: s.expires, ToolVersion: "test",
		Sources: []bundle.Source{{Name: "tools", Type: "files", URL: "https://example.org/"}},
		Trust:   bundle.Trust{SHA256: impSum([]byte(trust)), File: trust}}
	paths := make([]string, 0, len(s.files))
	for p := range s.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	byHash := map[string][]byte{}
	carried := map[string]bool{}
	for _, p := range paths {
		b := s.files[p]
		h := impSum(b)
		m.Tree = append(m.Tree, bundle.Entry{Path: p, SHA256: h, Size: int64(len(b))})
		name := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		m.Packages = append(m.Packages, bundle.Package{Source: "tools", Name: name, Version: "1", Path: p,
			Size: int64(len(b)), SHA256: h, Keys: []string{"k"}})
		byHash[h] = b
		if (s.carry == nil || slices.Contains(s.carry, p)) && !carried[h] {
			carried[h] = true
			m.Blobs = append(m.Blobs, bundle.Blob{SHA256: h, Size: int64(len(b))})
		}
	}
	src := func(h string) (io.ReadCloser, error) {
		b, ok := byHash[h]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	w, err := bundle.Write(context.Background(), dir, fmt.Sprintf("b%d-%d", s.seq, rand.Int()), m, key, src,
		bundle.Options{MaxPartSize: s.partSize})
	if err != nil {
		t.Fatal(err)
	}
	return w.Paths[:len(w.Paths)-1], m
}

// impTreeHash hashes everything served under DIR/current plus the current
// link target: byte-identical trees give identical hashes.
func impTreeHash(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	target, err := os.Readlink(filepath.Join(dir, repo.CurrentLink))
	if err != nil {
		return "none"
	}
	fmt.Fprintf(h, "current=%s\n", target)
	root := filepath.Join(dir, repo.CurrentLink) + "/"
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			fmt.Fprintf(h, "d %s\n", rel)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "f %s %s\n", rel, impSum(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func impOpts(dir string, key minisign.PrivateKey, now time.Time) ImportOptions {
	return ImportOptions{Repo: dir, Pub: key.Public(), Now: func() time.Time { return now }}
}

func impGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return body
}

// TestImportEndToEnd: key -> full bundle -> minisign -V (the real tool) ->
// import -> serve -> download and compare; then a delta adds a package:
// the new one is served and the old one still is.
func TestImportEndToEnd(t *testing.T) {
	key := impKey(t, 1)
	out, dir := t.TempDir(), t.TempDir()
	v1 := map[string][]byte{
		"tools/hello/hello-2.12.tar.gz":         impData("hello", 300<<10),
		"tools/hello/hello-2.12.tar.gz.minisig": []byte("sig"),
		"debian/dists/bookworm/InRelease":       []byte("release 1\n"),
	}
	full, _ := impBundle(t, out, key, impSpec{seq: 1, files: v1})

	pubFile := filepath.Join(out, "operator.pub")
	os.WriteFile(pubFile, key.Public().File(), 0o644)
	if o, err := exec.Command("minisign", "-V", "-p", pubFile, "-m", full[0]).CombinedOutput(); err != nil {
		t.Fatalf("minisign -V refuses the bundle: %v\n%s", err, o)
	}

	res, err := Import(context.Background(), impOpts(dir, key, impT0.Add(time.Hour)), full)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Result != repo.ResultImported || res[0].NewBlobs != 3 || res[0].Sequence != 1 {
		t.Fatalf("results %+v", res)
	}
	srv := httptest.NewServer(serve.NewHandler(dir))
	defer srv.Close()
	for p, want := range v1 {
		if got := impGet(t, srv.URL+"/"+p); impSum(got) != impSum(want) {
			t.Fatalf("%s served with another hash", p)
		}
	}

	// Delta: a new release, a new index; hello-2.12 is not carried.
	v2 := map[string][]byte{
		"tools/hello/hello-2.12.tar.gz":         v1["tools/hello/hello-2.12.tar.gz"],
		"tools/hello/hello-2.12.tar.gz.minisig": []byte("sig"),
		"tools/hello/hello-2.13.tar.gz":         impData("hello-2.13", 200<<10),
		"debian/dists/bookworm/InRelease":       []byte("release 2\n"),
	}
	delta, _ := impBundle(t, out, key, impSpec{seq: 2, base: 1, files: v2,
		carry: []string{"tools/hello/hello-2.13.tar.gz", "debian/dists/bookworm/InRelease"}})
	res, err = Import(context.Background(), impOpts(dir, key, impT0.Add(2*time.Hour)), delta)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].NewBlobs != 2 {
		t.Fatalf("delta stored %d new blobs, want 2", res[0].NewBlobs)
	}
	for p, want := range v2 {
		if got := impGet(t, srv.URL+"/"+p); !bytes.Equal(got, want) {
			t.Fatalf("%s after the delta: wrong content", p)
		}
	}
	st, err := Status(context.Background(), dir, impT0.Add(3*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sequence != 2 || st.BaseSeq != 1 || st.Signer != key.Public().ID.String() || st.Expired ||
		st.Files != 4 || !slices.Equal(st.Generations, []uint64{1, 2}) || len(st.Log) != 2 || st.HeldBlobs != 5 {
		t.Fatalf("status %+v", st)
	}
	if st, _ := Status(context.Background(), dir, impT0.Add(31*24*time.Hour), 1); !st.Expired || len(st.Log) != 1 {
		t.Fatalf("status 31 days later: expired=%v log=%d", st.Expired, len(st.Log))
	}
	rc, err := repo.ReadReceipt(dir)
	if err != nil || rc.Sequence != 2 || len(rc.Blobs) != 5 {
		t.Fatalf("receipt %+v %v", rc, err)
	}
}

// TestImportRefusesFIFO: a FIFO on the medium named like a bundle is
// refused at once (opening it would wait forever, with the repository's lock
// held), the refusal is logged, and the lock is free afterwards.
func TestImportRefusesFIFO(t *testing.T) {
	key := impKey(t, 1)
	dir := t.TempDir()
	fifo := filepath.Join(t.TempDir(), "b.tar.zst")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Import(context.Background(), impOpts(dir, key, impT0), []string{fifo})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, bundle.ErrNotRegular) {
			t.Fatalf("import of a FIFO: %v, want ErrNotRegular", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("import waited on a FIFO")
	}
	r, err := repo.Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("the repository after the refusal: %v", err)
	}
	r.Close()
}

// TestImportRefusesUnservableTreeFirst: a publish tree the bundle format
// allows but the repository cannot serve (a colon, too deep, too long) is
// refused by admit, before any blob enters the store, and CheckPublishable
// (what `mirror verify` runs) names it.
func TestImportRefusesUnservableTreeFirst(t *testing.T) {
	key := impKey(t, 1)
	for _, p := range []string{
		"tools/hello-2026-01-01T00:00:00Z.tar.gz",
		"tools/" + strings.Repeat("d/", repo.MaxPathDepth) + "f",
		"tools/" + strings.Repeat(strings.Repeat("n", 200)+"/", repo.MaxPathLen/200+1) + "f",
	} {
		out, dir := t.TempDir(), t.TempDir()
		b, m := impBundle(t, out, key, impSpec{seq: 1, files: map[string][]byte{p: impData("a", 64<<10)}})
		if err := CheckPublishable(m); !errors.Is(err, repo.ErrBadPath) {
			t.Fatalf("%.40s...: CheckPublishable: %v, want ErrBadPath", p, err)
		}
		_, err := Import(context.Background(), impOpts(dir, key, impT0.Add(time.Hour)), b)
		if !errors.Is(err, repo.ErrBadPath) {
			t.Fatalf("%.40s...: import: %v, want ErrBadPath", p, err)
		}
		blobs := 0
		filepath.WalkDir(filepath.Join(dir, "store"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && repo.ValidSum(d.Name()) {
				blobs++
			}
			return nil
		})
		if blobs != 0 {
			t.Fatalf("%.40s...: %d blobs stored before the refusal", p, blobs)
		}
	}
}

// Each bad bundle is refused with its own reason, and what is served stays
// byte-identical.
func TestImportRefusals(t *testing.T) {
	key, other := impKey(t, 1), impKey(t, 2)
	out, dir := t.TempDir(), t.TempDir()
	files1 := map[string][]byte{"tools/a.tar.gz": impData("a", 100<<10), "tools/b.tar.gz": impData("b", 50<<10)}
	files2 := map[string][]byte{"tools/a.tar.gz": files1["tools/a.tar.gz"], "tools/c.tar.gz": impData("c", 80<<10)}
	b1, _ := impBundle(t, out, key, impSpec{seq: 1, files: files1})
	b2, m2 := impBundle(t, out, key, impSpec{seq: 2, base: 1, files: files2, carry: []string{"tools/c.tar.gz"}})
	now := impT0.Add(time.Hour)
	if _, err := Import(context.Background(), impOpts(dir, key, now), append(b1, b2...)); err != nil {
		t.Fatal(err)
	}
	// tamper copies a bundle and changes the byte at off (from the end
	// when negative).
	tamper := func(src string, at func(data []byte) int) []string {
		data, _ := os.ReadFile(src)
		i := at(data)
		data[i] ^= 0x55
		p := filepath.Join(t.TempDir(), filepath.Base(src))
		os.WriteFile(p, data, 0o644)
		return []string{p}
	}
	big := map[string][]byte{"tools/z.tar.gz": impData("z", 400<<10)}

	cases := []struct {
		name   string
		paths  func() []string
		opts   func(o *ImportOptions)
		want   error
		phrase string
	}{
		{"rollback", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 1, files: map[string][]byte{"x": []byte("old")}})
			return p
		}, nil, ErrRollback, "superseded by what is served"},
		{"replay of the sequence with another bundle", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 2, files: map[string][]byte{"x": []byte("other")}})
			return p
		}, nil, ErrRollback, "has sequence 2"},
		{"missing base", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 5, base: 4, files: map[string][]byte{"x": []byte("x")}})
			return p
		}, nil, ErrMissingBase, "import the bundle with sequence 4 first; if it is lost, carry receipt.json out and have the operator run `mirror sync --since receipt.json`"},
		{"delta whose base content is gone", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 3, base: 2, files: map[string][]byte{"x": []byte("x"), "lost": []byte("never stored")}, carry: []string{"x"}})
			return p
		}, nil, ErrMissingBase, "lost content"},
		{"expired", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 3, created: impT0.Add(-48 * time.Hour), expires: impT0.Add(-time.Minute), files: files1})
			return p
		}, nil, ErrExpired, "`mirror sync --since receipt.json` for a fresh bundle"},
		{"max-age", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 3, created: impT0.Add(-10 * 24 * time.Hour), files: files1})
			return p
		}, func(o *ImportOptions) { o.MaxAge = 7 * 24 * time.Hour }, ErrTooOld, "more than --max-age 168h0m0s"},
		{"wrong key", func() []string {
			p, _ := impBundle(t, out, other, impSpec{seq: 3, files: files1})
			return p
		}, nil, bundle.ErrSignature, other.Public().ID.String()},
		{"tampered manifest", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 3, files: files1})
			return impRecompress(t, p[0], func(tar []byte) int { return bytes.Index(tar, []byte(`"tools/a.tar.gz"`)) + 3 })
		}, nil, bundle.ErrSignature, "signature"},
		{"tampered blob", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 3, files: big})
			return impRecompress(t, p[0], func(tar []byte) int { return len(tar) / 2 })
		}, nil, bundle.ErrHashMismatch, "blob"},
		{"corrupt compressed byte", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 3, files: big})
			return tamper(p[0], func(data []byte) int { return len(data) / 2 })
		}, nil, nil, ""},
		{"split bundle with a part missing", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 3, files: big, partSize: 100 << 10})
			if len(p) < 3 {
				t.Fatalf("%d parts", len(p))
			}
			return append(p[:1], p[2:]...)
		}, nil, bundle.ErrPart, "part"},
		{"split bundle with a corrupt part", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 3, files: big, partSize: 100 << 10})
			return append(tamper(p[1], func(data []byte) int { return len(data) - 100 }), append(p[:1], p[2:]...)...)
		}, nil, bundle.ErrPart, "part"},
		{"truncated", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 3, files: big})
			data, _ := os.ReadFile(p[0])
			q := filepath.Join(t.TempDir(), "t.tar.zst")
			os.WriteFile(q, data[:len(data)*2/3], 0o644)
			return []string{q}
		}, nil, bundle.ErrTruncated, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := impTreeHash(t, dir)
			stateBefore, _ := os.ReadFile(filepath.Join(dir, repo.StateFile))
			o := impOpts(dir, key, now)
			if tc.opts != nil {
				tc.opts(&o)
			}
			res, err := Import(context.Background(), o, tc.paths())
			if err == nil || len(res) != 0 {
				t.Fatalf("imported: %+v", res)
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("not a refusal: %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if tc.want == nil && !errors.Is(err, bundle.ErrHashMismatch) && !errors.Is(err, bundle.ErrCorrupt) {
				t.Fatalf("corrupt byte: %v", err)
			}
			if !strings.Contains(err.Error(), tc.phrase) {
				t.Fatalf("message %q lacks %q", err, tc.phrase)
			}
			t.Logf("%v", err)
			if after := impTreeHash(t, dir); after != before {
				t.Fatal("served tree changed")
			}
			if stateAfter, _ := os.ReadFile(filepath.Join(dir, repo.StateFile)); !bytes.Equal(stateBefore, stateAfter) {
				t.Fatal("state.json changed")
			}
			log, _ := repo.ReadLog(dir, 1)
			if len(log) != 1 || log[0].Result != repo.ResultRefused {
				t.Fatalf("log: %+v", log)
			}
		})
	}
	if t.Failed() {
		return
	}
	// The same bundle again: a no-op that says so.
	res, err := Import(context.Background(), impOpts(dir, key, now), b2)
	if err != nil || len(res) != 1 || res[0].Result != repo.ResultAlready {
		t.Fatalf("re-import: %+v %v", res, err)
	}
	// And after all the refusals, the next good import works.
	b3, _ := impBundle(t, out, key, impSpec{seq: 3, base: 2, files: map[string][]byte{"tools/c.tar.gz": files2["tools/c.tar.gz"], "tools/d": []byte("d")}, carry: []string{"tools/d"}})
	if res, err := Import(context.Background(), impOpts(dir, key, now), b3); err != nil || res[0].Sequence != 3 {
		t.Fatalf("next import: %+v %v", res, err)
	}
	_ = m2
}

// impRecompress decompresses a bundle, flips the byte at(tar) of the tar
// stream and compresses it again (one frame with its checksum): only the
// signature or the blob hashes can notice.
func impRecompress(t *testing.T, src string, at func(tar []byte) int) []string {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tar, err := dec.DecodeAll(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	i := at(tar)
	if i < 3 {
		t.Fatal("place to tamper with not found")
	}
	tar[i] ^= 0x55
	enc, err := zstd.NewWriter(nil, zstd.WithWindowSize(1<<20), zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(p, enc.EncodeAll(tar, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{p}
}

// Bundles given together are imported in sequence order, the parts of a
// split bundle grouped, .minisig files skipped.
func TestImportSeveralInOrder(t *testing.T) {
	key := impKey(t, 1)
	out, dir := t.TempDir(), t.TempDir()
	f1 := map[string][]byte{"a": impData("a", 40<<10)}
	f2 := map[string][]byte{"a": f1["a"], "b": impData("b", 300<<10)}
	f3 := map[string][]byte{"a": f1["a"], "b": f2["b"], "c": []byte("c")}
	b1, _ := impBundle(t, out, key, impSpec{seq: 1, files: f1})
	b2, _ := impBundle(t, out, key, impSpec{seq: 2, base: 1, files: f2, carry: []string{"b"}, partSize: 100 << 10})
	b3, _ := impBundle(t, out, key, impSpec{seq: 3, base: 2, files: f3, carry: []string{"c"}})
	if len(b2) < 3 {
		t.Fatalf("bundle 2 has %d parts, want several", len(b2))
	}
	slices.Reverse(b2)
	args := append(append(append([]string{}, b3...), b2...), b1[0], b1[0]+".minisig")
	res, err := Import(context.Background(), impOpts(dir, key, impT0), args)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, r := range res {
		seqs = append(seqs, r.Sequence)
	}
	if !slices.Equal(seqs, []uint64{1, 2, 3}) {
		t.Fatalf("imported %v, want [1 2 3]", seqs)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "current", "b")); !bytes.Equal(got, f2["b"]) {
		t.Fatal("b not served")
	}
	// keep 1: only generation 3 stays.
	f4 := map[string][]byte{"c": []byte("c"), "d": []byte("d")}
	b4, _ := impBundle(t, out, key, impSpec{seq: 4, base: 3, files: f4, carry: []string{"d"}})
	o := impOpts(dir, key, impT0)
	o.Keep = 1
	res, err = Import(context.Background(), o, b4)
	if err != nil {
		t.Fatal(err)
	}
	if gens, _ := repo.Generations(dir); !slices.Equal(gens, []uint64{4}) || res[0].CollectedGenerations != 3 || res[0].CollectedBlobs != 2 {
		t.Fatalf("after keep=1: generations %v, result %+v", gens, res[0])
	}
}

func TestGroupBundles(t *testing.T) {
	got := GroupBundles([]string{"x/b.tar.zst.part-002", "a.tar.zst", "a.tar.zst.minisig", "/media/usb2/b.tar.zst.part-001", "c.tar.zst.part-1", "y/a.tar.zst"})
	want := [][]string{{"x/b.tar.zst.part-002", "/media/usb2/b.tar.zst.part-001"}, {"a.tar.zst"}, {"c.tar.zst.part-1"}, {"y/a.tar.zst"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("GroupBundles = %v, want %v", got, want)
	}
}

// TestImportCommandLineSlips: a bundle file that is not there fails the
// import before the repository is opened, so a mistyped --repo is not
// made and nothing is logged; a bundle named twice (again, or through a
// link) is imported once; a split bundle may be named as a whole one.
func TestImportCommandLineSlips(t *testing.T) {
	key := impKey(t, 1)
	media := t.TempDir()
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := Import(context.Background(), impOpts(dir, key, impT0), []string{filepath.Join(media, "nosuch.tar.zst")}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("import of a missing file: %v, want ErrNotExist", err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the import of a missing file made the repository (%v)", err)
	}

	b1, _ := impBundle(t, media, key, impSpec{seq: 1, files: map[string][]byte{"tools/a.tar.gz": impData("a", 1000)}})
	link := filepath.Join(t.TempDir(), "same.tar.zst")
	if err := os.Symlink(b1[0], link); err != nil {
		t.Fatal(err)
	}
	res, err := Import(context.Background(), impOpts(dir, key, impT0), []string{b1[0], filepath.Dir(b1[0]) + "/./" + filepath.Base(b1[0]), link})
	if err != nil || len(res) != 1 || res[0].Result != repo.ResultImported {
		t.Fatalf("one bundle named three ways: %+v, %v; want it imported once", res, err)
	}

	parts, _ := impBundle(t, media, key, impSpec{seq: 2, base: 1, partSize: 64 << 10,
		files: map[string][]byte{"tools/a.tar.gz": impData("a", 1000), "tools/b.tar.gz": impData("b", 200<<10)}, carry: []string{"tools/b.tar.gz"}})
	if len(parts) < 2 {
		t.Fatalf("the bundle was not split: %v", parts)
	}
	whole := strings.TrimSuffix(parts[0], ".part-001")
	if res, err := Import(context.Background(), impOpts(dir, key, impT0), append([]string{whole}, parts...)); err != nil || len(res) != 1 || res[0].Sequence != 2 || res[0].Result != repo.ResultImported {
		t.Fatalf("a split bundle named as a whole one and by its parts: %+v, %v; want it imported once", res, err)
	}
}

// TestImportReportsWithdrawn: an import says how many files of the
// generation served before the new one leaves out, and names the first
// few (a revoked key or a narrowed scope outside withdraws packages at the
// next import, and the inside sees it here and in the log).
func TestImportReportsWithdrawn(t *testing.T) {
	key := impKey(t, 1)
	media, dir := t.TempDir(), t.TempDir()
	a, b, c := impData("a", 1000), impData("b", 1000), impData("c", 1000)
	b1, _ := impBundle(t, media, key, impSpec{seq: 1, files: map[string][]byte{"tools/a.tar.gz": a, "tools/b.tar.gz": b, "tools/c.tar.gz": c}})
	b2, _ := impBundle(t, media, key, impSpec{seq: 2, base: 1, files: map[string][]byte{"tools/a.tar.gz": a}, carry: []string{}})
	res, err := Import(context.Background(), impOpts(dir, key, impT0), b1)
	if err != nil || res[0].Withdrawn != 0 {
		t.Fatalf("first import: %+v, %v; want nothing withdrawn", res, err)
	}
	res, err = Import(context.Background(), impOpts(dir, key, impT0), b2)
	if err != nil || len(res) != 1 || res[0].Withdrawn != 2 || !slices.Equal(res[0].WithdrawnFirst, []string{"tools/b.tar.gz", "tools/c.tar.gz"}) {
		t.Fatalf("import of a generation without b and c: %+v, %v; want 2 withdrawn, named", res, err)
	}
	log, err := repo.ReadLog(dir, 1)
	if err != nil || len(log) != 1 || !strings.Contains(log[0].Message, "2 files of the generation before are no longer served (tools/b.tar.gz, tools/c.tar.gz)") {
		t.Fatalf("log: %+v, %v", log, err)
	}
}

// cancelAtBlob cancels the import when its first blob is stored.
type cancelAtBlob struct{ cancel func() }

func (cancelAtBlob) Start(string, uint64, int, int64) {}
func (c cancelAtBlob) Blob(int64)                     { c.cancel() }
func (cancelAtBlob) Done(ImportResult)                {}

// TestImportInterruptedLogged: an import stopped (SIGINT, SIGTERM: its
// context cancelled) while it stores blobs is logged as interrupted with
// nothing served changed, not as a bare "context canceled".
func TestImportInterruptedLogged(t *testing.T) {
	key := impKey(t, 1)
	dir := t.TempDir()
	b1, _ := impBundle(t, t.TempDir(), key, impSpec{seq: 1, files: map[string][]byte{"tools/a.tar.gz": impData("a", 1000), "tools/b.tar.gz": impData("b", 1000)}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := impOpts(dir, key, impT0)
	opts.Progress = cancelAtBlob{cancel}
	_, err := Import(ctx, opts, b1)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("import cancelled while storing blobs: %v", err)
	}
	log, lerr := repo.ReadLog(dir, 1)
	if lerr != nil || len(log) != 1 || !strings.Contains(log[0].Message, "interrupted before the switch; nothing served changed") {
		t.Fatalf("log of the interrupted import: %+v, %v", log, lerr)
	}
}

// TestImportRecheck: --recheck re-verifies upstream signatures with the
// trust file the bundle carries: a bundle whose package is signed by a key
// outside its scope is refused, a good one passes; without --recheck the
// operator's word is taken.
func TestImportRecheck(t *testing.T) {
	op := impKey(t, 1)
	up, other := impKey(t, 7), impKey(t, 8)
	trust := fmt.Sprintf("[[trust.key]]\nname = \"hello-release\"\nminisign = %q\nallow = [\"tools:hello\"]\n\n"+
		"[[trust.key]]\nname = \"other\"\nminisign = %q\nallow = [\"tools:other\"]\n", up.Public().String(), other.Public().String())
	comment := "trusted"
	mk := func(out string, seq uint64, signer minisign.PrivateKey) []string {
		pkg := impData(fmt.Sprint("hello", seq), 70<<10)
		sig, err := signer.Sign(bytes.NewReader(pkg), comment, "untrusted")
		if err != nil {
			t.Fatal(err)
		}
		sigData := sig.Marshal()
		m := &bundle.Manifest{Sequence: seq, Created: impT0, Expires: impT0.Add(24 * time.Hour), ToolVersion: "test",
			Sources: []bundle.Source{{Name: "tools", Type: "files", URL: "https://example.org/"}},
			Trust:   bundle.Trust{SHA256: impSum([]byte(trust)), File: trust}}
		m.Packages = []bundle.Package{{Source: "tools", Name: "hello", Version: "1", Path: "tools/hello.tar.gz", Size: int64(len(pkg)), SHA256: impSum(pkg),
			Signatures: []bundle.PackageSignature{{Path: "tools/hello.tar.gz.minisig", SHA256: impSum(sigData), Scheme: "minisign"}}, Keys: []string{"hello-release"}}}
		m.Tree = []bundle.Entry{{Path: "tools/hello.tar.gz", SHA256: impSum(pkg), Size: int64(len(pkg))},
			{Path: "tools/hello.tar.gz.minisig", SHA256: impSum(sigData), Size: int64(len(sigData))}}
		m.Blobs = []bundle.Blob{{SHA256: impSum(pkg), Size: int64(len(pkg))}, {SHA256: impSum(sigData), Size: int64(len(sigData))}}
		byHash := map[string][]byte{impSum(pkg): pkg, impSum(sigData): sigData}
		w, err := bundle.Write(context.Background(), out, fmt.Sprint("r", seq), m, op,
			func(h string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(byHash[h])), nil }, bundle.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return w.Paths[:1]
	}
	out, dir := t.TempDir(), t.TempDir()
	o := impOpts(dir, op, impT0.Add(time.Hour))
	o.Recheck = true
	if _, err := Import(context.Background(), o, mk(out, 1, up)); err != nil {
		t.Fatalf("good bundle with --recheck: %v", err)
	}
	before := impTreeHash(t, dir)
	bad := mk(out, 2, other) // the operator's tool let an out-of-scope signature through
	_, err := Import(context.Background(), o, bad)
	if !errors.Is(err, ErrRecheck) || !strings.Contains(err.Error(), "tools:hello") {
		t.Fatalf("out-of-scope signature with --recheck: %v", err)
	}
	t.Log(err)
	if impTreeHash(t, dir) != before {
		t.Fatal("served tree changed")
	}
	o.Recheck = false
	if _, err := Import(context.Background(), o, bad); err != nil {
		t.Fatalf("without --recheck the operator's signature decides: %v", err)
	}
	o.Recheck = true
	// A signature whose trusted comment names another file (minisign's
	// default form) than the one published: refused on recheck too.
	comment = "timestamp:1700000000\tfile:other.tar.gz\thashed"
	_, err = Import(context.Background(), o, mk(out, 3, up))
	if !errors.Is(err, ErrRecheck) || !strings.Contains(err.Error(), verify.ErrWrongFile.Error()) {
		t.Fatalf("signature for another file with --recheck: %v", err)
	}
	comment = "timestamp:1700000000\tfile:hello.tar.gz\thashed"
	if _, err := Import(context.Background(), o, mk(out, 4, up)); err != nil {
		t.Fatalf("signature naming the published file, with --recheck: %v", err)
	}
}
