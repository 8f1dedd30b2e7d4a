package bundle

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite bundle/testdata/golden from the current writer")

// goldenBundle writes the golden bundle: a fixed key, time and blobs.
func goldenBundle(t *testing.T, opt Options) *Written {
	t.Helper()
	key := testKey(t, 42)
	blobs := [][]byte{[]byte("hello, world\n"), {}, bytes.Repeat([]byte("compressible "), 1000), testBlobs(9, 5000)[0]}
	w, _ := writeTest(t, key, 12, blobs, opt)
	return w
}

// TestGolden compares a small bundle, byte for byte, with the files in
// testdata/golden (regenerate with go test ./bundle -update), and checks
// that the encoder's concurrency does not change the bytes.
func TestGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  Options
	}{{"small", Options{}}, {"split", Options{MaxPartSize: 6000}}} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "golden", c.name)
			w := goldenBundle(t, c.opt)
			if *update {
				os.RemoveAll(dir)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, p := range w.Paths {
					if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), mustRead(t, p), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*"))
			if len(files) != len(w.Paths) {
				t.Fatalf("golden %s has %d files, the writer made %d (run go test ./bundle -update if the format changed on purpose)", dir, len(files), len(w.Paths))
			}
			for _, p := range w.Paths {
				want := mustRead(t, filepath.Join(dir, filepath.Base(p)))
				if !bytes.Equal(mustRead(t, p), want) {
					t.Errorf("%s differs from the golden file (run go test ./bundle -update if the format changed on purpose)", filepath.Base(p))
				}
			}
			for _, conc := range []int{1, 2, 4} {
				opt := c.opt
				opt.Concurrency = conc
				w2 := goldenBundle(t, opt)
				for i := range w.Paths {
					if !bytes.Equal(mustRead(t, w.Paths[i]), mustRead(t, w2.Paths[i])) {
						t.Errorf("concurrency %d: %s differs", conc, filepath.Base(w.Paths[i]))
					}
				}
			}
			// The golden files themselves read back with the golden key.
			var paths []string
			for _, f := range files {
				if filepath.Ext(f) != ".minisig" {
					paths = append(paths, f)
				}
			}
			if _, blobs, err := readAll(paths, testKey(t, 42).Public(), Limits{}); err != nil || len(blobs) != 4 {
				t.Fatalf("golden bundle reads back with %d blobs, err %v", len(blobs), err)
			}
		})
	}
}
