package bundle

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tool returns the path of a real tool the test needs; a missing tool
// fails the test (scripts/test installs them).
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed for this cross-check and is not installed (scripts/test installs it): %v", name, err)
	}
	return p
}

func runTool(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func runSh(t *testing.T, dir, script string) string {
	t.Helper()
	cmd := exec.Command(tool(t, "sh"), "-ec", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh -ec %q: %v\n%s", script, err, out)
	}
	return string(out)
}

// TestStockTools checks a good bundle with minisign, tar, zstd and sha256sum
// only, as the README member tells a person to.
func TestStockTools(t *testing.T) {
	key := testKey(t, 1)
	blobs := testBlobs(5, 0, 1, 1000, 70000)
	for _, split := range []int64{0, 16 << 10} {
		w, m := writeTest(t, key, 3, blobs, Options{MaxPartSize: split})
		dir := filepath.Dir(w.Paths[0])
		if err := os.WriteFile(filepath.Join(dir, "operator.pub"), key.Public().File(), 0o644); err != nil {
			t.Fatal(err)
		}
		if split > 0 {
			if len(w.Paths) < 4 {
				t.Fatalf("split into %d files, want several parts", len(w.Paths)-1)
			}
			// Each part header is checked with minisign on its own.
			for _, p := range bundlePaths(w) {
				b := filepath.Base(p)
				runSh(t, dir, "sed -n 2p "+b+" > h.json && sed -n 3,6p "+b+" > h.json.minisig")
				out := runTool(t, dir, "minisign", "-Vm", "h.json", "-p", "operator.pub")
				if !strings.Contains(out, "part=") || !strings.Contains(out, m.ID) {
					t.Errorf("part header trusted comment: %s", out)
				}
			}
			// Join as the README says.
			runSh(t, dir, `for p in b.tar.zst.part-*; do tail -c +4097 "$p"; done > b.tar.zst`)
			if got := sum(mustRead(t, filepath.Join(dir, "b.tar.zst"))); got != w.SHA256 {
				t.Fatalf("joined parts have SHA-256 %s, Write says %s", got, w.SHA256)
			}
		} else if w.SHA256 != "" {
			t.Errorf("unsplit bundle: Write reports SHA-256 %q, want none", w.SHA256)
		}
		// The digest Write reports is the one b2sum prints, for a whole
		// bundle and for joined parts alike.
		if got := strings.Fields(runTool(t, dir, "b2sum", "b.tar.zst"))[0]; got != w.BLAKE2b512 || len(got) != 128 {
			t.Errorf("b2sum b.tar.zst = %s, Write says %s", got, w.BLAKE2b512)
		}
		out := runTool(t, dir, "minisign", "-Vm", "b.tar.zst", "-p", "operator.pub")
		if !strings.Contains(out, "file=b.tar.zst id="+m.ID) {
			t.Errorf("minisign trusted comment: %s", out)
		}
		x := filepath.Join(dir, "x")
		os.Mkdir(x, 0o755)
		runTool(t, x, "tar", "--zstd", "-xf", "../b.tar.zst")
		runTool(t, x, "minisign", "-Vm", "manifest.json", "-p", "../operator.pub")
		out = runTool(t, x, "sha256sum", "--strict", "-c", "SHA256SUMS")
		if n := strings.Count(out, ": OK"); n != 3+len(blobs) {
			t.Errorf("sha256sum checked %d files, want %d:\n%s", n, 3+len(blobs), out)
		}
		// zstd itself finds exactly one valid frame.
		runTool(t, dir, "zstd", "-t", "b.tar.zst")
		list := runTool(t, dir, "tar", "--zstd", "-tvf", "b.tar.zst")
		if strings.Contains(list, "->") || strings.Count(list, "\n") != 4+len(blobs) {
			t.Errorf("tar listing:\n%s", list)
		}
	}
}

func TestCheckFileSignature(t *testing.T) {
	key := testKey(t, 1)
	blobs := testBlobs(5, 10, 30000)
	for _, split := range []int64{0, 9000} {
		w, m := writeTest(t, key, 3, blobs, Options{MaxPartSize: split})
		paths := bundlePaths(w)
		sigPath, err := CheckFileSignature(context.Background(), paths, key.Public(), m)
		if err != nil || sigPath != w.Paths[len(w.Paths)-1] {
			t.Fatalf("split %d: good bundle: %s, %v", split, sigPath, err)
		}
		if _, err := CheckFileSignature(context.Background(), paths, testKey(t, 2).Public(), m); !errors.Is(err, ErrSignature) {
			t.Fatalf("split %d: another key: %v, want ErrSignature", split, err)
		}
		other := *m
		other.Sequence++
		if _, err := CheckFileSignature(context.Background(), paths, key.Public(), &other); !errors.Is(err, ErrSignature) {
			t.Fatalf("split %d: signature of another bundle: %v, want ErrSignature", split, err)
		}
		if err := os.Remove(w.Paths[len(w.Paths)-1]); err != nil {
			t.Fatal(err)
		}
		if _, err := CheckFileSignature(context.Background(), paths, key.Public(), m); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("split %d: missing .minisig: %v, want os.ErrNotExist", split, err)
		}
	}
	// A changed byte (here the frame checksum) is a bad file signature.
	w, m := writeTest(t, key, 3, testBlobs(6, 300000), Options{})
	data := mustRead(t, w.Paths[0])
	data[len(data)-1] ^= 1
	os.WriteFile(w.Paths[0], data, 0o644)
	if _, err := CheckFileSignature(context.Background(), w.Paths[:1], key.Public(), m); !errors.Is(err, ErrSignature) {
		t.Fatalf("changed file: %v, want ErrSignature", err)
	}
}
