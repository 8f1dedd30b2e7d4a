package bundle

import (
	"bytes"
	"path/filepath"
	"testing"
)

// FuzzPartHeader fuzzes the signed header of a split bundle's part (issue
// 7: part headers are read from removable media before anything else).
// The input is the header text; it is padded with newlines to
// PartHeaderSize as the writer does (longer inputs are passed as they are).
// Properties: nothing is returned on error; an accepted header's fields are
// within the limits the reader relies on; whatever the operator key
// accepts is also accepted without a key (the signature only narrows), and
// re-signing the parsed header with the operator key gives back the block
// byte for byte (so no two distinct blocks verify as the same header).
func FuzzPartHeader(f *testing.F) {
	key := testKey(f, 42) // the key of testdata/golden
	pub := key.Public()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "split", "b.tar.zst.part-*"))
	if err != nil {
		f.Fatal(err)
	}
	seeds := 0
	for _, p := range files {
		block := mustRead(f, p)[:PartHeaderSize]
		if _, err := parsePartHeader(block, &pub); err != nil {
			f.Fatalf("seed %s: %v", p, err) // the success path must be reachable
		}
		f.Add(bytes.TrimRight(block, "\n"))
		seeds++
	}
	if seeds == 0 {
		f.Fatal("no golden split parts for seeds")
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		block := text
		if len(text) < PartHeaderSize {
			block = append(bytes.Clone(text), bytes.Repeat([]byte{'\n'}, PartHeaderSize-len(text))...)
		}
		loose, errLoose := parsePartHeader(block, nil)
		if errLoose != nil && loose != nil {
			t.Fatal("header returned with an error")
		}
		h, err := parsePartHeader(block, &pub)
		if err != nil {
			if h != nil {
				t.Fatal("header returned with an error")
			}
			return
		}
		if errLoose != nil {
			t.Fatalf("signed header refused without a key: %v", errLoose)
		}
		if h.Index < 1 || h.Index > h.Count || h.Count > MaxParts || h.Size < 1 || h.Offset < 0 || h.Offset+h.Size > h.TotalSize {
			t.Fatalf("accepted header out of range: %+v", h)
		}
		again, err := marshalPartHeader(h, key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, block) {
			t.Fatalf("a different block verifies as header %+v", h)
		}
	})
}
