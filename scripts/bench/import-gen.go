//go:build ignore

// import-gen writes the import and serve benchmarks' input: OUT/operator.pub
// and OUT/bench.tar.zst, a full bundle of N blobs of SIZE random bytes
// (random: real packages are compressed already), published as
// pkgs/NNNN.tar.gz. SIZE "mixed" gives every 20th blob 4 MiB, every other
// 5th 256 KiB and the rest 16 KiB; OUT/urls lists the paths.
//
//	go run scripts/bench/import-gen.go OUT [N [SIZE|mixed]]
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/minisign"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go run scripts/bench/import-gen.go OUT [N [SIZE]]")
		os.Exit(2)
	}
	out := os.Args[1]
	n, size := 2000, 256<<10
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	if len(os.Args) > 3 {
		size, _ = strconv.Atoi(os.Args[3]) // 0 for "mixed"
	}
	if err := run(out, n, size); err != nil {
		fmt.Fprintln(os.Stderr, "import-gen:", err)
		os.Exit(1)
	}
}

func sizeOf(i, size int) int {
	switch {
	case size > 0:
		return size
	case i%20 == 0:
		return 4 << 20
	case i%5 == 0:
		return 256 << 10
	}
	return 16 << 10
}

func blob(i, size int) []byte {
	b := make([]byte, sizeOf(i, size))
	rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 'b'}).Read(b)
	return b
}

func run(out string, n, size int) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	key, err := minisign.GenerateKey(rand.NewChaCha8([32]byte{'k'}))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "operator.pub"), key.Public().File(), 0o644); err != nil {
		return err
	}
	now := time.Now().UTC()
	m := &bundle.Manifest{Sequence: 1, Created: now, Expires: now.Add(365 * 24 * time.Hour), ToolVersion: "bench",
		Sources: []bundle.Source{{Name: "pkgs", Type: "files", URL: "https://example.org/"}}}
	sums := map[string]int{}
	var urls bytes.Buffer
	for i := range n {
		s := sha256.Sum256(blob(i, size))
		h := hex.EncodeToString(s[:])
		sums[h] = i
		p := fmt.Sprintf("pkgs/%04d.tar.gz", i)
		sz := int64(sizeOf(i, size))
		m.Tree = append(m.Tree, bundle.Entry{Path: p, SHA256: h, Size: sz})
		m.Blobs = append(m.Blobs, bundle.Blob{SHA256: h, Size: sz})
		fmt.Fprintf(&urls, "%s %d %s\n", p, sz, h)
	}
	if err := os.WriteFile(filepath.Join(out, "urls"), urls.Bytes(), 0o644); err != nil {
		return err
	}
	src := func(h string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob(sums[h], size))), nil }
	os.Remove(filepath.Join(out, "bench.tar.zst"))
	os.Remove(filepath.Join(out, "bench.tar.zst.minisig"))
	_, err = bundle.Write(context.Background(), out, "bench", m, key, src, bundle.Options{})
	return err
}
