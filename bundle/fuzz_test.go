package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fuzzKey signs the seeds; the fuzzer's inputs are read with its public key.
const fuzzKeySeed = 42

var allSentinels = []error{ErrSignature, ErrFormat, ErrMalformed, ErrLimit, ErrHashMismatch, ErrUnlisted,
	ErrDuplicate, ErrUnsafePath, ErrTrailingData, ErrCorrupt, ErrTruncated, ErrPart}

// splitParts cuts a fuzz input into files: a new file starts at every part
// header magic, so concatenated parts become parts again.
func splitParts(data []byte) [][]byte {
	magic := []byte(PartFormat + "\n")
	if !bytes.HasPrefix(data, magic) {
		return [][]byte{data}
	}
	var files [][]byte
	for len(data) > 0 {
		next := bytes.Index(data[1:], magic)
		if next < 0 {
			files = append(files, data)
			break
		}
		files = append(files, data[:next+1])
		data = data[next+1:]
	}
	return files
}

// FuzzOpen runs the reader over arbitrary bytes (one bundle file, or parts
// concatenated). Properties: no panic; an error comes with no reader and
// matches this package's sentinels; a blob reader that reaches io.EOF
// delivered bytes of the listed hash; an accepted bundle's manifest bytes
// are exactly what the writer makes of the parsed manifest (round trip).
func FuzzOpen(f *testing.F) {
	seeds := 0
	for _, dir := range []string{"small", "split"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "golden", dir, "b.tar.zst*"))
		var joined []byte
		for _, p := range files {
			if filepath.Ext(p) == ".minisig" {
				continue
			}
			joined = append(joined, mustRead(f, p)...)
		}
		if len(joined) > 0 {
			f.Add(joined)
			seeds++
		}
	}
	key := testKey(f, fuzzKeySeed)
	for _, sizes := range [][]int{nil, {0}, {1, 2, 3}} {
		blobs := testBlobs(1, sizes...)
		w, _ := writeTest(f, key, 2, blobs, Options{})
		f.Add(mustRead(f, w.Paths[0]))
		w, _ = writeTest(f, key, 3, blobs, Options{MaxPartSize: PartHeaderSize + 200})
		var joined []byte
		for _, p := range bundlePaths(w) {
			joined = append(joined, mustRead(f, p)...)
		}
		f.Add(joined)
		seeds += 2
	}
	if seeds < 8 {
		f.Fatalf("only %d seeds: the golden files in testdata/golden are missing", seeds)
	}
	pub := key.Public()
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		var paths []string
		for i, b := range splitParts(data) {
			p := filepath.Join(dir, PartName("f.tar.zst", i+1))
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		r, err := Open(context.Background(), paths, pub, Limits{MaxManifestSize: 1 << 20, MaxTotalSize: 16 << 20})
		if err != nil {
			if r != nil {
				t.Fatal("Open returned a reader and an error")
			}
			if !isAny(err, allSentinels...) {
				t.Fatalf("Open error %q matches no sentinel", err)
			}
			return
		}
		defer r.Close()
		canon, merr := marshalManifest(r.Manifest())
		if merr != nil || !bytes.Equal(canon, r.ManifestBytes()) {
			t.Fatalf("accepted manifest bytes are not the writer's form of the manifest")
		}
		for {
			info, br, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if br != nil {
					t.Fatal("Next returned a reader and an error")
				}
				if !isAny(err, allSentinels...) {
					t.Fatalf("Next error %q matches no sentinel", err)
				}
				return
			}
			h := sha256.New()
			n, err := io.Copy(h, br)
			if err != nil {
				if !isAny(err, allSentinels...) {
					t.Fatalf("blob read error %q matches no sentinel", err)
				}
				return
			}
			if n != info.Size || hex.EncodeToString(h.Sum(nil)) != info.SHA256 {
				t.Fatalf("blob %s reached io.EOF with other content", info.SHA256)
			}
		}
	})
}

// FuzzManifest runs Validate over arbitrary JSON. Properties: an error is a
// *ManifestError matching a sentinel; a valid manifest survives a
// marshal/parse round trip unchanged and still validates.
func FuzzManifest(f *testing.F) {
	seeds := 0
	add := func(m *Manifest) {
		b, err := marshalManifest(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		seeds++
	}
	m := testManifest(3, testBlobs(1, 0, 5, 10))
	m.Format, m.ID, m.OperatorKeyID = Format, m.ComputeID(), "0123456789ABCDEF"
	add(m)
	d := testManifest(9, testBlobs(2, 5, 10))
	d.Format, d.ID, d.OperatorKeyID, d.BaseSequence = Format, d.ComputeID(), "0123456789ABCDEF", 8
	d.Blobs = d.Blobs[:1] // a delta: the other blob is in the base
	d.Packages[1].Signatures = []PackageSignature{{Path: "tools/pkg1.tar.gz.minisig", SHA256: d.Blobs[0].SHA256, Scheme: "minisign"}}
	add(d)
	for _, s := range []string{`{}`, `{"format":"mirror-bundle/v1"}`, `{"format":"mirror-bundle/v1","tree":[{"path":"a/../b"}]}`, `[]`, `null`} {
		f.Add([]byte(s))
		seeds++
	}
	if seeds == 0 {
		f.Fatal("empty seed corpus")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Manifest
		if strictJSON(data, &m) != nil {
			return
		}
		err := m.Validate()
		if err != nil {
			var me *ManifestError
			if !errors.As(err, &me) || !isAny(err, allSentinels...) {
				t.Fatalf("Validate error %q is not a *ManifestError matching a sentinel", err)
			}
			return
		}
		b, err := marshalManifest(&m)
		if err != nil {
			t.Fatal(err)
		}
		var again Manifest
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatal(err)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("round-tripped manifest fails Validate: %v", err)
		}
		b2, _ := marshalManifest(&again)
		if !bytes.Equal(b, b2) || !reflect.DeepEqual(normalize(&m), normalize(&again)) {
			t.Fatalf("manifest changed in a round trip")
		}
	})
}

// normalize makes nil and empty lists equal for comparison.
func normalize(m *Manifest) *Manifest {
	b, _ := marshalManifest(m)
	var c Manifest
	json.Unmarshal(b, &c)
	return &c
}
