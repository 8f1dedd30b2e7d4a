package bundle

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestOpenRefusesNonRegular: a FIFO where a bundle, a part or a .minisig is
// expected (or a link to one) is refused at once with ErrNotRegular, by
// Open and by CheckFileSignature: opening or reading it would wait forever.
func TestOpenRefusesNonRegular(t *testing.T) {
	key := testKey(t, 1)
	w, m := writeTest(t, key, 1, [][]byte{[]byte("a"), []byte("b")}, Options{})
	ws, _ := writeTest(t, key, 1, [][]byte{noise(1, 30000), noise(2, 30000)}, Options{MaxPartSize: 20000})
	dir := t.TempDir()
	fifo := filepath.Join(dir, "b.tar.zst")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	link := filepath.Join(dir, "link.tar.zst")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	// A whole bundle whose .minisig is a FIFO.
	sigDir := t.TempDir()
	whole := filepath.Join(sigDir, "w.tar.zst")
	data, err := os.ReadFile(w.Paths[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(whole, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(whole+".minisig", 0o644); err != nil {
		t.Fatal(err)
	}
	// A split bundle whose second part is a FIFO.
	parts := bundlePaths(ws)
	if len(parts) < 2 {
		t.Fatalf("%d parts", len(parts))
	}
	os.Remove(parts[1])
	if err := syscall.Mkfifo(parts[1], 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, paths := range [][]string{{fifo}, {link}, parts} {
			if r, err := Open(context.Background(), paths, key.Public(), Limits{}); !errors.Is(err, ErrNotRegular) {
				if r != nil {
					r.Close()
				}
				t.Errorf("Open %v: %v, want ErrNotRegular", paths, err)
			}
			if _, err := CheckFileSignature(context.Background(), paths, key.Public(), m); !errors.Is(err, ErrNotRegular) {
				t.Errorf("CheckFileSignature %v: %v, want ErrNotRegular", paths, err)
			}
		}
		if _, err := CheckFileSignature(context.Background(), []string{whole}, key.Public(), m); !errors.Is(err, ErrNotRegular) {
			t.Errorf("CheckFileSignature with a FIFO as .minisig: %v, want ErrNotRegular", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a reader waited on a FIFO")
	}
}

// noise is n incompressible bytes from seed.
func noise(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}
