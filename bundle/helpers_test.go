package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/internal/minisign"
)

// testKey is a deterministic operator key.
func testKey(t testing.TB, seed byte) minisign.PrivateKey {
	t.Helper()
	k, err := minisign.GenerateKey(rand.NewChaCha8([32]byte{seed}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var testTime = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// testBlobs returns deterministic blobs of the given sizes (random bytes,
// distinct contents).
func testBlobs(seed byte, sizes ...int) [][]byte {
	r := rand.NewChaCha8([32]byte{seed, 1})
	var out [][]byte
	for i, n := range sizes {
		b := make([]byte, n)
		r.Read(b)
		if n == 0 && i > 0 {
			continue // only one empty blob can exist
		}
		out = append(out, b)
	}
	return out
}

// testManifest describes blobs as packages of one source, each published
// at tools/pkgN.tar.gz.
func testManifest(seq uint64, blobs [][]byte) *Manifest {
	trust := "[[trust.key]]\nname = \"hello-release\"\n"
	m := &Manifest{
		Sequence:    seq,
		Created:     testTime,
		Expires:     testTime.Add(30 * 24 * time.Hour),
		ToolVersion: "test",
		Sources:     []Source{{Name: "tools", Type: "files", URL: "https://downloads.example.org/releases/"}},
		Trust:       Trust{SHA256: sum([]byte(trust)), File: trust},
		Rejected:    []Rejected{{Source: "tools", Name: "evil", Reason: "signed by a key outside its scope"}},
	}
	for i, b := range blobs {
		s := sum(b)
		path := fmt.Sprintf("tools/pkg%d.tar.gz", i)
		m.Packages = append(m.Packages, Package{Source: "tools", Name: fmt.Sprintf("pkg%d", i), Version: "1.0",
			Path: path, Size: int64(len(b)), SHA256: s, Keys: []string{"hello-release"}})
		m.Tree = append(m.Tree, Entry{Path: path, SHA256: s, Size: int64(len(b))})
		m.Blobs = append(m.Blobs, Blob{SHA256: s, Size: int64(len(b))})
	}
	return m
}

func mapSource(blobs [][]byte) BlobSource {
	byHash := map[string][]byte{}
	for _, b := range blobs {
		byHash[sum(b)] = b
	}
	return func(s string) (io.ReadCloser, error) {
		b, ok := byHash[s]
		if !ok {
			return nil, fmt.Errorf("no blob %s: %w", s, os.ErrNotExist)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

// writeTest writes a bundle of blobs into a new directory.
func writeTest(t testing.TB, key minisign.PrivateKey, seq uint64, blobs [][]byte, opt Options) (*Written, *Manifest) {
	t.Helper()
	dir := t.TempDir()
	m := testManifest(seq, blobs)
	w, err := Write(context.Background(), dir, "b", m, key, mapSource(blobs), opt)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return w, m
}

// bundlePaths is Written.Paths without the .minisig.
func bundlePaths(w *Written) []string {
	return w.Paths[:len(w.Paths)-1]
}

// readAll opens and reads a whole bundle, returning the blobs in order.
func readAll(paths []string, pub minisign.PublicKey, lim Limits) (*Manifest, [][]byte, error) {
	r, err := Open(context.Background(), paths, pub, lim)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var out [][]byte
	for {
		_, br, err := r.Next()
		if err == io.EOF {
			return r.Manifest(), out, nil
		}
		if err != nil {
			return nil, nil, err
		}
		b, err := io.ReadAll(br)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, b)
	}
}

// readBytes reads a whole bundle given as the bytes of one file.
func readBytes(t testing.TB, data []byte, pub minisign.PublicKey, lim Limits) error {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.tar.zst")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := readAll([]string{p}, pub, lim)
	return err
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// isAny reports whether err matches one of targets.
func isAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
