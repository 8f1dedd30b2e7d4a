package bundle_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/minisign"
)

// Write a bundle of one package, then open it with the operator's public
// key and stream its blobs.
func Example() {
	dir, err := os.MkdirTemp("", "bundle-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	key, err := minisign.GenerateKey(rand.NewChaCha8([32]byte{})) // use crypto/rand for a real key
	if err != nil {
		log.Fatal(err)
	}

	content := []byte("hello, world\n")
	s := sha256.Sum256(content)
	sum := hex.EncodeToString(s[:])
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	m := &bundle.Manifest{
		Sequence: 1, Created: created, Expires: created.Add(30 * 24 * time.Hour), ToolVersion: "example",
		Sources:  []bundle.Source{{Name: "tools", Type: "files", URL: "https://example.org/"}},
		Packages: []bundle.Package{{Source: "tools", Name: "hello", Version: "1.0", Path: "tools/hello.txt", Size: int64(len(content)), SHA256: sum}},
		Tree:     []bundle.Entry{{Path: "tools/hello.txt", SHA256: sum, Size: int64(len(content))}},
		Blobs:    []bundle.Blob{{SHA256: sum, Size: int64(len(content))}},
	}
	blobs := func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil }
	w, err := bundle.Write(context.Background(), dir, "mirror-0001", m, key, blobs, bundle.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(w.Paths), "files")

	r, err := bundle.Open(context.Background(), w.Paths[:1], key.Public(), bundle.Limits{})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	fmt.Println("sequence", r.Manifest().Sequence)
	for {
		info, blob, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		data, err := io.ReadAll(blob) // a real consumer writes to a temp file and commits after io.EOF
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("blob %s…: %q\n", info.SHA256[:8], data)
	}
	// Output:
	// 2 files
	// sequence 1
	// blob 853ff937…: "hello, world\n"
}
