package main

import (
	"bufio"
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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/mirror"
	"github.com/mirror-tool/mirror/mirror/repo"
	"github.com/mirror-tool/mirror/mirror/store"
)

var (
	impBinOnce sync.Once
	impBin     string
	impBinErr  error
)

// impBinary builds the mirror command once for the subprocess tests.
func impBinary(t *testing.T) string {
	t.Helper()
	impBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mirror-import-test-")
		if err != nil {
			impBinErr = err
			return
		}
		impBin = filepath.Join(dir, "mirror")
		out, err := exec.Command("go", "build", "-tags", "mirrortesthooks", "-o", impBin, ".").CombinedOutput()
		if err != nil {
			impBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if impBinErr != nil {
		t.Fatal(impBinErr)
	}
	return impBin
}

func impSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func impData(seed string, n int) []byte {
	var s [32]byte
	copy(s[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// impFixture is a key, its operator.pub, a full bundle 1 and a delta 2.
type impFixture struct {
	key        minisign.PrivateKey
	pub        string
	b1, b2     []string
	tree1      map[string][]byte
	tree2      map[string][]byte
	carried2   int
	bundlesDir string
}

func impWrite(t *testing.T, dir string, key minisign.PrivateKey, seq, base uint64, files map[string][]byte, carry func(string) bool) []string {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	m := &bundle.Manifest{Sequence: seq, BaseSequence: base, Created: now.Add(-time.Minute), Expires: now.Add(24 * time.Hour), ToolVersion: "test",
		Sources: []bundle.Source{{Name: "tools", Type: "files", URL: "https://example.org/"}}}
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	byHash := map[string][]byte{}
	for _, p := range paths {
		b := files[p]
		h := impSum(b)
		m.Tree = append(m.Tree, bundle.Entry{Path: p, SHA256: h, Size: int64(len(b))})
		if _, dup := byHash[h]; !dup && (carry == nil || carry(p)) {
			m.Blobs = append(m.Blobs, bundle.Blob{SHA256: h, Size: int64(len(b))})
		}
		byHash[h] = b
	}
	src := func(h string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(byHash[h])), nil }
	w, err := bundle.Write(context.Background(), dir, fmt.Sprintf("seq%d", seq), m, key, src, bundle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return w.Paths[:len(w.Paths)-1]
}

func newImpFixture(t *testing.T) *impFixture {
	t.Helper()
	key, err := minisign.GenerateKey(rand.NewChaCha8([32]byte{'c'}))
	if err != nil {
		t.Fatal(err)
	}
	f := &impFixture{key: key, bundlesDir: t.TempDir(), tree1: map[string][]byte{}, tree2: map[string][]byte{}}
	f.pub = filepath.Join(f.bundlesDir, "operator.pub")
	os.WriteFile(f.pub, key.Public().File(), 0o644)
	for i := range 8 {
		p := fmt.Sprintf("tools/pkg%d/pkg%d-1.0.tar.gz", i, i)
		f.tree1[p] = impData(p, 64<<10+i)
		f.tree2[p] = f.tree1[p]
	}
	f.tree1["tools/index.html"] = []byte("index 1")
	for i := range 6 {
		p := fmt.Sprintf("tools/new%d/new%d-2.0.tar.gz", i, i)
		f.tree2[p] = impData(p, 48<<10+i)
	}
	f.tree2["tools/index.html"] = []byte("index 2")
	f.b1 = impWrite(t, f.bundlesDir, key, 1, 0, f.tree1, nil)
	f.b2 = impWrite(t, f.bundlesDir, key, 2, 1, f.tree2, func(p string) bool { return !strings.HasPrefix(p, "tools/pkg") })
	return f
}

// repoAt1 is a fresh repository holding generation 1.
func (f *impFixture) repoAt1(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	_, err := mirror.Import(context.Background(), mirror.ImportOptions{Repo: dir, Pub: f.key.Public()}, f.b1)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// impTreeHash hashes the served tree (and where current points).
func impTreeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	target, err := os.Readlink(filepath.Join(dir, repo.CurrentLink))
	if err != nil {
		t.Fatalf("no current generation: %v", err)
	}
	fmt.Fprintf(h, "%s\n", target)
	root := filepath.Join(dir, repo.CurrentLink) + "/"
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s %s\n", rel, impSum(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func treeHashOf(files map[string][]byte, seq int) string {
	h := sha256.New()
	fmt.Fprintf(h, "generations/%d\n", seq)
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths) // WalkDir order is lexical too
	for _, p := range paths {
		fmt.Fprintf(h, "%s %s\n", p, impSum(files[p]))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// importCmd imports bundle 2 keeping one generation, so that collection
// (of generation 1 and its index blob) happens too.
func (f *impFixture) importCmd(dir string, env ...string) *exec.Cmd {
	args := append([]string{"import", "--pub", f.pub, "--repo", dir, "--keep", "1"}, f.b2...)
	cmd := exec.Command(impBin, args...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// TestImportKilled kills `mirror import` (SIGKILL, from inside, at named
// steps) and checks each time that the previous generation is intact and
// served whole, and that the next import succeeds without repair.
func TestImportKilled(t *testing.T) {
	impBinary(t)
	f := newImpFixture(t)
	h1, h2 := treeHashOf(f.tree1, 1), treeHashOf(f.tree2, 2)
	steps := []struct {
		step     string
		switched bool
	}{
		{"opened", false}, {"blob:1", false}, {"blob:4", false}, {"ingested", false},
		{"link:1", false}, {"link:9", false}, {"built", false}, {"synced", false}, {"recorded", false},
		{"placed", false}, {"switched", true}, {"collected-generations", true}, {"collect-blob:1", true},
		{"collected", true},
	}
	for _, s := range steps {
		t.Run(s.step, func(t *testing.T) {
			dir := f.repoAt1(t)
			if got := impTreeHash(t, dir); got != h1 {
				t.Fatal("fixture: generation 1 not as expected")
			}
			var stderr bytes.Buffer
			cmd := f.importCmd(dir, "MIRROR_TEST_KILL_AT="+s.step)
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("import was not killed at %s: %v\n%s", s.step, err, stderr.String())
			}
			want := h1
			if s.switched {
				want = h2
			}
			if got := impTreeHash(t, dir); got != want {
				t.Fatalf("after a kill at %s the served tree is neither intact generation (switched=%v)", s.step, s.switched)
			}
			out, err := f.importCmd(dir).CombinedOutput()
			if err != nil {
				t.Fatalf("next import after a kill at %s: %v\n%s", s.step, err, out)
			}
			if got := impTreeHash(t, dir); got != h2 {
				t.Fatalf("next import after a kill at %s: generation 2 not served", s.step)
			}
			impCheckClean(t, dir)
		})
	}
}

// TestImportKilledAnytime kills the import from outside after random
// delays.
func TestImportKilledAnytime(t *testing.T) {
	impBinary(t)
	f := newImpFixture(t)
	h1, h2 := treeHashOf(f.tree1, 1), treeHashOf(f.tree2, 2)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 8 {
		dir := f.repoAt1(t)
		cmd := f.importCmd(dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		if got := impTreeHash(t, dir); got != h1 && got != h2 {
			t.Fatalf("kill %d: served tree is a mix", i)
		}
		if out, err := f.importCmd(dir).CombinedOutput(); err != nil {
			t.Fatalf("kill %d: next import: %v\n%s", i, err, out)
		}
		if impTreeHash(t, dir) != h2 {
			t.Fatalf("kill %d: generation 2 not served after the next import", i)
		}
		impCheckClean(t, dir)
	}
}

// impCheckClean: no temporary leftovers, state and receipt say 2.
func impCheckClean(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{filepath.Join(dir, repo.TmpDir), filepath.Join(dir, repo.StoreDir, "tmp")} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("%s not empty: %v", d, ents)
		}
	}
	// The store's batch marker (blobs adopted without an fsync each) is
	// gone: the import's syncfs ran, or Open recovered the batch.
	if _, err := os.Lstat(filepath.Join(dir, repo.StoreDir, store.UnsyncedMarker)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("store batch marker left: %v", err)
	}
	st, err := repo.ReadState(dir)
	if err != nil || st.Sequence != 2 {
		t.Errorf("state %+v %v", st, err)
	}
	rc, err := repo.ReadReceipt(dir)
	if err != nil || rc.Sequence != 2 {
		t.Errorf("receipt %+v %v", rc, err)
	}
	// Collection finished: only generation 2 and exactly its blobs.
	if gens, _ := repo.Generations(dir); len(gens) != 1 || gens[0] != 2 {
		t.Errorf("generations %v, want [2]", gens)
	}
	rec, err := repo.ReadRecord(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, e := range rec.Tree {
		want[e.SHA256] = true
	}
	if rc != nil && len(rc.Blobs) != len(want) {
		t.Errorf("receipt lists %d blobs, generation 2 has %d", len(rc.Blobs), len(want))
	}
	for _, b := range rc.Blobs {
		if !want[b] {
			t.Errorf("blob %s kept though no generation uses it", b)
		}
	}
}

// TestImportFullDisk: writes fail with ENOSPC part way: refused cleanly,
// nothing served changes, the next import succeeds.
func TestImportFullDisk(t *testing.T) {
	impBinary(t)
	f := newImpFixture(t)
	for _, after := range []string{"0", "100000", "250000"} {
		dir := f.repoAt1(t)
		before := impTreeHash(t, dir)
		var stderr bytes.Buffer
		cmd := f.importCmd(dir, "MIRROR_TEST_ENOSPC_AFTER="+after)
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailed {
			t.Fatalf("ENOSPC after %s: %v\n%s", after, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "no space left on device") || !strings.Contains(stderr.String(), "hint: free space") {
			t.Fatalf("ENOSPC after %s: message %q", after, stderr.String())
		}
		if impTreeHash(t, dir) != before {
			t.Fatalf("ENOSPC after %s: served tree changed", after)
		}
		if ents, _ := os.ReadDir(filepath.Join(dir, repo.StoreDir, "tmp")); len(ents) != 0 {
			t.Fatalf("ENOSPC after %s: temporary blobs left: %v", after, ents)
		}
		log, _ := repo.ReadLog(dir, 1)
		if len(log) != 1 || log[0].Result != repo.ResultFailed {
			t.Fatalf("log %+v", log)
		}
		if out, err := f.importCmd(dir).CombinedOutput(); err != nil {
			t.Fatalf("import after the disk was freed: %v\n%s", err, out)
		}
	}
}

// TestImportCLI: exit codes and messages of import and status.
func TestImportCLI(t *testing.T) {
	f := newImpFixture(t)
	dir := t.TempDir()
	var out, errb bytes.Buffer
	runc := func(args ...string) int {
		out.Reset()
		errb.Reset()
		return run(context.Background(), append([]string{"mirror"}, args...), &out, &errb)
	}
	if code := runc("import", "--repo", dir, f.b1[0]); code != exitUsage {
		t.Fatalf("without --pub: exit %d", code)
	}
	if code := runc("import", "--pub", f.pub, "--repo", dir); code != exitUsage {
		t.Fatalf("without bundles: exit %d", code)
	}
	if code := runc("import", "--pub", f.pub, "--repo", dir, f.b1[0]+".minisig"); code != exitUsage {
		t.Fatalf("only a .minisig: exit %d", code)
	}
	if code := runc("status", "--repo", dir); code != exitFailed || !strings.Contains(errb.String(), "no generation imported yet") {
		t.Fatalf("status of an empty repository: %d %s", code, errb.String())
	}
	if code := runc("import", "--pub", f.pub, "--repo", dir, f.b2[0], f.b1[0]); code != exitOK {
		t.Fatalf("import: %d %s", code, errb.String())
	}
	if !regexp.MustCompile(`(?s)imported sequence 1 .*imported sequence 2 `).MatchString(out.String()) {
		t.Fatalf("import output %q", out.String())
	}
	if code := runc("import", "--pub", f.pub, "--repo", dir, f.b2[0]); code != exitOK || !strings.Contains(out.String(), "was imported before: nothing to do") {
		t.Fatalf("re-import: %d %q", code, out.String())
	}
	// Bundle 1 again is in the history: nothing to do; another bundle with
	// sequence 1 is a rollback.
	if code := runc("import", "--pub", f.pub, "--repo", dir, f.b1[0]); code != exitOK || !strings.Contains(out.String(), "nothing to do") {
		t.Fatalf("bundle 1 again: %d %q", code, out.String())
	}
	old := impWrite(t, t.TempDir(), f.key, 1, 0, map[string][]byte{"x": []byte("old")}, nil)
	if code := runc("import", "--pub", f.pub, "--repo", dir, old[0]); code != exitFailed ||
		!strings.Contains(errb.String(), "rollback refused") || !strings.Contains(errb.String(), "hint:") {
		t.Fatalf("rollback: %d %q", code, errb.String())
	}
	// Another operator's key.
	other, _ := minisign.GenerateKey(rand.NewChaCha8([32]byte{'o'}))
	otherPub := filepath.Join(t.TempDir(), "other.pub")
	os.WriteFile(otherPub, other.Public().File(), 0o644)
	if code := runc("import", "--pub", otherPub, "--repo", dir, f.b2[0]); code != exitFailed ||
		!strings.Contains(errb.String(), f.key.Public().ID.String()) || !strings.Contains(errb.String(), other.Public().ID.String()) {
		t.Fatalf("wrong key: %d %q (want both key ids)", code, errb.String())
	}
	if code := runc("status", "--repo", dir); code != exitOK {
		t.Fatalf("status: %d %s", code, errb.String())
	}
	for _, want := range []string{"sequence 2 (delta on 1)", "by operator key " + f.key.Public().ID.String(), "generations: [1 2]", "refused", "already-imported", "valid until"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	if code := runc("status", "--repo", dir, "--json"); code != exitOK || !strings.Contains(out.String(), `"sequence": 2`) {
		t.Fatalf("status --json: %d %s", code, out.String())
	}
}

// TestServeCommand runs `mirror serve` on loopback, downloads, and stops it
// with SIGTERM (graceful: exit 0).
func TestServeCommand(t *testing.T) {
	bin := impBinary(t)
	f := newImpFixture(t)
	dir := f.repoAt1(t)
	cmd := exec.Command(bin, "serve", "--repo", dir, "--listen", "127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`on (http://127\.0\.0\.1:[0-9]+/)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("serve said %q", line)
	}
	for p, want := range f.tree1 {
		resp, err := http.Get(m[1] + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Header.Get("ETag") != `"`+impSum(want)+`"` {
			t.Fatalf("%s: %d, %d bytes, etag %s", p, resp.StatusCode, len(body), resp.Header.Get("ETag"))
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
}

// TestImportCLIInterrupted: an import stopped by a signal says so, and
// that nothing served changed (true: the repository still serves
// generation 1), instead of "context canceled".
func TestImportCLIInterrupted(t *testing.T) {
	f := newImpFixture(t)
	dir := f.repoAt1(t)
	before := impTreeHash(t, dir)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(&interruptedError{sig: syscall.SIGINT})
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"mirror", "import", "--pub", f.pub, "--repo", dir}, f.b2...), &out, &errb)
	if want := "mirror: interrupted (SIGINT); nothing served changed\n"; code != exitFailed || !strings.Contains(errb.String(), want) || strings.Contains(errb.String(), "context canceled") {
		t.Fatalf("exit %d, want 1 and %q\n%s\n%s", code, want, out.String(), errb.String())
	}
	if impTreeHash(t, dir) != before {
		t.Fatal("the interrupted import changed what is served")
	}
}

// TestImportCLIOnlySignature: given only a bundle's detached .minisig,
// import says it skipped it and names the file to give.
func TestImportCLIOnlySignature(t *testing.T) {
	code, _, errs := runCLI("import", "--pub", "operator.pub", "--repo", t.TempDir(), "bundles/mirror-000001.tar.zst.minisig")
	want := "skipped bundles/mirror-000001.tar.zst.minisig (a detached signature); give bundles/mirror-000001.tar.zst"
	if code != exitUsage || !strings.Contains(errs, want) {
		t.Fatalf("exit %d, want 2 and %q:\n%s", code, want, errs)
	}
	if code, _, errs := runCLI("import", "--pub", "operator.pub", "--repo", t.TempDir()); code != exitUsage || !strings.Contains(errs, "no bundle given") {
		t.Fatalf("no argument: exit %d:\n%s", code, errs)
	}
}
