package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mirror-tool/mirror/internal/minisign"
)

type member struct {
	hdr  tar.Header
	data []byte
}

// unpack decompresses a bundle and returns its members.
func unpack(t testing.TB, bundle []byte) []member {
	t.Helper()
	d, err := zstd.NewReader(bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tr := tar.NewReader(d)
	var ms []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ms
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, member{*h, data})
	}
}

// pack writes members as a tar archive, then after the archive's end adds
// after, and compresses the whole as the writer does.
func pack(t testing.TB, ms []member, after []byte) []byte {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, m := range ms {
		h := m.hdr
		if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA {
			h.Size = int64(len(m.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	raw.Write(after)
	return compress(t, raw.Bytes())
}

func compress(t testing.TB, raw []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	enc, err := newEncoder(&out, DefaultLevel, 1)
	if err != nil {
		t.Fatal(err)
	}
	enc.Write(raw)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func decompress(t testing.TB, data []byte) []byte {
	t.Helper()
	d, err := zstd.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	raw, err := io.ReadAll(d)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// fixChecksum recomputes a ustar header's checksum, so that only the field
// edited differs.
func fixChecksum(h []byte) {
	copy(h[148:156], "        ")
	var sum int
	for _, c := range h[:512] {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

func reg(name string, data []byte) member {
	return member{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: testTime}, data}
}

// fixture is a good bundle and what is needed to damage it.
type fixture struct {
	key   minisign.PrivateKey
	m     *Manifest
	blobs [][]byte
	data  []byte   // b.tar.zst
	sig   []byte   // b.tar.zst.minisig
	ms    []member // its members
}

func newFixture(t testing.TB, keySeed byte, seq uint64, sizes ...int) *fixture {
	key := testKey(t, keySeed)
	blobs := testBlobs(keySeed+byte(seq), sizes...)
	w, m := writeTest(t, key, seq, blobs, Options{})
	data := mustRead(t, w.Paths[0])
	return &fixture{key: key, m: m, blobs: blobs, data: data, sig: mustRead(t, w.Paths[1]), ms: unpack(t, data)}
}

func (f *fixture) copyMembers() []member {
	out := make([]member, len(f.ms))
	for i, m := range f.ms {
		out[i] = member{m.hdr, bytes.Clone(m.data)}
	}
	return out
}

// resign returns members with a new manifest, signed by key.
func resign(t testing.TB, ms []member, manifest []byte, key minisign.PrivateKey, comment string) []member {
	t.Helper()
	sig, err := key.Sign(bytes.NewReader(manifest), comment, untrustedComment(key.ID))
	if err != nil {
		t.Fatal(err)
	}
	ms[0].data = manifest
	ms[1].data = sig.Marshal()
	return ms
}

// checkRefused reads data as a bundle, and requires an error matching want
// (and the check that no blob that reached io.EOF was wrong).
func checkRefused(t *testing.T, f *fixture, data []byte, lim Limits, want ...error) {
	t.Helper()
	err := readChecked(t, f, data, lim)
	if err == nil {
		t.Fatalf("damaged bundle was accepted")
	}
	if !isAny(err, want...) {
		t.Fatalf("error %q does not match any of %v", err, want)
	}
	t.Logf("refused: %v", err)
}

// readChecked reads a whole bundle. A blob whose reader returned io.EOF
// must be exactly the original: that is what a consumer commits.
func readChecked(t testing.TB, f *fixture, data []byte, lim Limits) error {
	return readCheckedSig(t, f, data, nil, lim)
}

// readCheckedSig is readChecked with a detached signature beside the file
// (which Open must not need).
func readCheckedSig(t testing.TB, f *fixture, data, sig []byte, lim Limits) error {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.tar.zst")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if sig != nil {
		if err := os.WriteFile(p+".minisig", sig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return readPathsChecked(t, f, []string{p}, lim)
}

func readPathsChecked(t testing.TB, f *fixture, paths []string, lim Limits) error {
	t.Helper()
	r, err := Open(context.Background(), paths, f.key.Public(), lim)
	if err != nil {
		if r != nil {
			t.Fatal("Open returned a reader with an error")
		}
		return err
	}
	defer r.Close()
	want := map[string][]byte{}
	for _, b := range f.blobs {
		want[sum(b)] = b
	}
	for {
		info, br, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if br != nil {
				t.Fatal("Next returned a reader with an error")
			}
			return err
		}
		got, err := io.ReadAll(br)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want[info.SHA256]) {
			t.Fatalf("blob %s reached io.EOF with wrong content", info.SHA256)
		}
	}
}

func TestCorruptMembers(t *testing.T) {
	f := newFixture(t, 1, 5, 10, 2000, 30000)
	other := newFixture(t, 1, 6, 11, 2001, 30001) // same key, another bundle
	stranger := testKey(t, 99)
	blob := func(i int) int { return fixedMembers + i }

	cases := []struct {
		name    string
		edit    func(ms []member) []member
		after   []byte
		lim     Limits
		want    []error
		direct  []byte // instead of pack(edit(...))
		rawEdit func([]byte) []byte
	}{
		{name: "good bundle repacked", want: nil},
		{name: "manifest and signature swapped", want: []error{ErrMalformed}, edit: func(ms []member) []member {
			ms[0], ms[1] = ms[1], ms[0]
			return ms
		}},
		{name: "README before signature", want: []error{ErrMalformed}, edit: func(ms []member) []member {
			ms[1], ms[2] = ms[2], ms[1]
			return ms
		}},
		{name: "blobs reordered", want: []error{ErrMalformed}, edit: func(ms []member) []member {
			ms[blob(0)], ms[blob(1)] = ms[blob(1)], ms[blob(0)]
			return ms
		}},
		{name: "blob repeated", want: []error{ErrDuplicate}, edit: func(ms []member) []member {
			return append(ms[:blob(1)], append([]member{ms[blob(0)]}, ms[blob(1):]...)...)
		}},
		{name: "manifest repeated", want: []error{ErrDuplicate}, edit: func(ms []member) []member {
			return append(ms[:blob(0)], append([]member{ms[0]}, ms[blob(0):]...)...)
		}},
		{name: "blob missing", want: []error{ErrTruncated}, edit: func(ms []member) []member {
			return ms[:len(ms)-1]
		}},
		{name: "member after the last blob", want: []error{ErrUnlisted}, edit: func(ms []member) []member {
			return append(ms, reg("extra.txt", []byte("x")))
		}},
		{name: "unlisted blob", want: []error{ErrUnlisted}, edit: func(ms []member) []member {
			return append(ms[:blob(0)], append([]member{reg(BlobDir+sum([]byte("?")), []byte("?"))}, ms[blob(0):]...)...)
		}},
		{name: "symlink member", want: []error{ErrUnsafePath}, edit: func(ms []member) []member {
			l := member{tar.Header{Typeflag: tar.TypeSymlink, Name: ms[blob(0)].hdr.Name, Linkname: "/etc/passwd"}, nil}
			return append(ms[:blob(0)], l)
		}},
		{name: "hard link member", want: []error{ErrUnsafePath}, edit: func(ms []member) []member {
			l := member{tar.Header{Typeflag: tar.TypeLink, Name: ms[blob(1)].hdr.Name, Linkname: ms[blob(0)].hdr.Name}, nil}
			return append(ms[:blob(1)], l)
		}},
		{name: "directory member", want: []error{ErrUnsafePath}, edit: func(ms []member) []member {
			d := member{tar.Header{Typeflag: tar.TypeDir, Name: "blobs/", Mode: 0o755}, nil}
			return append(ms[:blob(0)], append([]member{d}, ms[blob(0):]...)...)
		}},
		{name: "device member", want: []error{ErrUnsafePath}, edit: func(ms []member) []member {
			d := member{tar.Header{Typeflag: tar.TypeChar, Name: ms[blob(0)].hdr.Name, Devmajor: 1, Devminor: 3}, nil}
			return append(ms[:blob(0)], d)
		}},
		{name: "fifo member", want: []error{ErrUnsafePath}, edit: func(ms []member) []member {
			d := member{tar.Header{Typeflag: tar.TypeFifo, Name: ms[blob(0)].hdr.Name}, nil}
			return append(ms[:blob(0)], d)
		}},
		{name: "dot-dot name", want: []error{ErrUnsafePath}, edit: func(ms []member) []member {
			ms[blob(0)].hdr.Name = "../x"
			return ms
		}},
		{name: "absolute name", want: []error{ErrUnsafePath}, edit: func(ms []member) []member {
			ms[blob(0)].hdr.Name = "/etc/cron.d/x"
			return ms
		}},
		{name: "absolute manifest name", want: []error{ErrUnsafePath}, edit: func(ms []member) []member {
			ms[0].hdr.Name = "/manifest.json"
			return ms
		}},
		{name: "backslash name", want: []error{ErrUnsafePath}, edit: func(ms []member) []member {
			ms[blob(0)].hdr.Name = `blobs\..\..\x`
			return ms
		}},
		{name: "blob content changed", want: []error{ErrHashMismatch}, edit: func(ms []member) []member {
			ms[blob(1)].data[100] ^= 1
			return ms
		}},
		{name: "blob shorter", want: []error{ErrHashMismatch}, edit: func(ms []member) []member {
			ms[blob(1)].data = ms[blob(1)].data[:1999]
			return ms
		}},
		{name: "manifest changed", want: []error{ErrSignature}, edit: func(ms []member) []member {
			ms[0].data = bytes.Replace(ms[0].data, []byte(`"sequence":5`), []byte(`"sequence":9`), 1)
			return ms
		}},
		{name: "manifest signature changed", want: []error{ErrSignature}, edit: func(ms []member) []member {
			s, _ := minisign.ParseSignature(ms[1].data)
			s.Sig[7] ^= 1
			ms[1].data = s.Marshal()
			return ms
		}},
		{name: "trusted comment changed", want: []error{ErrSignature}, edit: func(ms []member) []member {
			ms[1].data = bytes.Replace(ms[1].data, []byte("sequence=5"), []byte("sequence=6"), 1)
			return ms
		}},
		{name: "manifest untrusted comment changed", want: []error{ErrMalformed}, edit: func(ms []member) []member {
			ms[1].data = bytes.Replace(ms[1].data, []byte("mirror operator"), []byte("mirror 0perator"), 1)
			return ms
		}},
		{name: "manifest signature garbled", want: []error{ErrMalformed}, edit: func(ms []member) []member {
			ms[1].data = []byte("not a signature\n")
			return ms
		}},
		{name: "manifest signed by another key", want: []error{ErrSignature}, edit: func(ms []member) []member {
			return resign(t, ms, ms[0].data, stranger, manifestComment(f.m))
		}},
		{name: "manifest signed with wrong trusted comment", want: []error{ErrSignature}, edit: func(ms []member) []member {
			return resign(t, ms, ms[0].data, f.key, "mirror-bundle/v1 manifest id=0 sequence=1")
		}},
		{name: "unknown format, validly signed", want: []error{ErrFormat}, edit: func(ms []member) []member {
			return resign(t, ms, bytes.Replace(ms[0].data, []byte(Format), []byte("mirror-bundle/v2"), 1), f.key, "")
		}},
		{name: "unknown field, validly signed", want: []error{ErrMalformed}, edit: func(ms []member) []member {
			return resign(t, ms, bytes.Replace(ms[0].data, []byte(`"format"`), []byte(`"x":1,"format"`), 1), f.key, "")
		}},
		{name: "unsafe tree path, validly signed", want: []error{ErrUnsafePath}, edit: func(ms []member) []member {
			return resign(t, ms, bytes.Replace(ms[0].data, []byte(`"path":"tools/pkg0.tar.gz","sha256"`), []byte(`"path":"../pkg0.tar.gz","sha256"`), 1), f.key, "")
		}},
		{name: "README of another bundle", want: []error{ErrHashMismatch}, edit: func(ms []member) []member {
			ms[2] = other.ms[2]
			return ms
		}},
		{name: "SHA256SUMS of another bundle", want: []error{ErrHashMismatch}, edit: func(ms []member) []member {
			ms[3] = other.ms[3]
			return ms
		}},
		{name: "blob of another bundle", want: []error{ErrUnlisted}, edit: func(ms []member) []member {
			ms[blob(1)] = other.ms[blob(1)]
			return ms
		}},
		{name: "blob of another bundle under this name", want: []error{ErrHashMismatch}, edit: func(ms []member) []member {
			ms[blob(1)].data = other.ms[blob(1)].data
			return ms
		}},
		{name: "manifest and signature of another bundle", want: []error{ErrHashMismatch}, edit: func(ms []member) []member {
			ms[0], ms[1] = other.ms[0], other.ms[1]
			return ms
		}},
		{name: "member mode changed", want: []error{ErrMalformed}, edit: func(ms []member) []member {
			ms[blob(0)].hdr.Mode = 0o4755
			return ms
		}},
		{name: "member owner changed", want: []error{ErrMalformed}, edit: func(ms []member) []member {
			ms[2].hdr.Uname, ms[2].hdr.Uid = "root", 1
			return ms
		}},
		{name: "manifest mtime changed", want: []error{ErrMalformed}, edit: func(ms []member) []member {
			ms[0].hdr.ModTime = ms[0].hdr.ModTime.Add(time.Second)
			return ms
		}},
		{name: "tar padding byte set", want: []error{ErrMalformed}, rawEdit: func(raw []byte) []byte {
			// The README member's padding: find its content end.
			i := bytes.Index(raw, []byte("code is safe.\n"))
			if i < 0 {
				t.Fatal("README text not found")
			}
			raw[i+len("code is safe.\n")] = 'x'
			return raw
		}},
		{name: "tar header unused field set", want: []error{ErrMalformed}, rawEdit: func(raw []byte) []byte {
			// devmajor of the first blob's header (offset 329 in a ustar header)
			for i := 0; i < len(raw); i += 512 {
				if bytes.HasPrefix(raw[i:], []byte(BlobDir)) {
					raw[i+329] = '1'
					fixChecksum(raw[i : i+512])
					return raw
				}
			}
			t.Fatal("no blob header found")
			return nil
		}},
		{name: "manifest over the size limit", want: []error{ErrLimit}, lim: Limits{MaxManifestSize: 100}},
		{name: "data after the tar end", want: []error{ErrTrailingData}, after: []byte("junk")},
		{name: "zeros after the tar end", want: []error{ErrTrailingData}, after: make([]byte, 10240)},
		{name: "second zstd frame", want: []error{ErrTrailingData}, direct: append(bytes.Clone(f.data), compress(t, []byte("more"))...)},
		{name: "skippable frame", want: []error{ErrTrailingData}, direct: append(bytes.Clone(f.data), 0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4)},
		{name: "junk after the frame", want: []error{ErrTrailingData}, direct: append(bytes.Clone(f.data), "junk"...)},
		{name: "one zero byte after the frame", want: []error{ErrTrailingData}, direct: append(bytes.Clone(f.data), 0)},
		{name: "whole bundle by another key", want: []error{ErrSignature}, direct: newFixture(t, 98, 5, 10).data},
		{name: "empty file", want: []error{ErrTruncated}, direct: []byte{}},
		{name: "not zstd", want: []error{ErrCorrupt}, direct: []byte("PK\x03\x04 this is a zip")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := c.direct
			if data == nil {
				ms := f.copyMembers()
				if c.edit != nil {
					ms = c.edit(ms)
				}
				data = pack(t, ms, c.after)
				if c.rawEdit != nil {
					data = compress(t, c.rawEdit(decompress(t, data)))
				}
			}
			if c.want == nil {
				if err := readChecked(t, f, data, c.lim); err != nil {
					t.Fatalf("good bundle refused: %v", err)
				}
				return
			}
			checkRefused(t, f, data, c.lim, c.want...)
		})
	}
}

// TestCorruptBytes flips bytes everywhere in the compressed file: in the
// frame header, inside blocks (manifest, signature, blobs, tar headers and
// padding), in the last block and the frame checksum. Every flip is refused
// with one of this package's errors, without the detached signature, and no
// wrong blob ever reaches io.EOF.
func TestCorruptBytes(t *testing.T) {
	f := newFixture(t, 1, 5, 10, 2000, 150000)
	if err := readChecked(t, f, f.data, Limits{}); err != nil {
		t.Fatalf("good bundle refused: %v", err)
	}
	all := []error{ErrSignature, ErrFormat, ErrMalformed, ErrLimit, ErrHashMismatch, ErrUnlisted,
		ErrDuplicate, ErrUnsafePath, ErrTrailingData, ErrCorrupt, ErrTruncated}
	n := len(f.data)
	offsets := map[int][]error{
		0: {ErrCorrupt}, 1: {ErrCorrupt}, 3: {ErrCorrupt}, // magic
		4: all, 5: all, // frame header descriptor, window
		n - 1: {ErrCorrupt}, n - 2: {ErrCorrupt}, n - 4: {ErrCorrupt}, // content checksum
	}
	for off := 6; off < n-4; off += max(1, n/corruptSteps) {
		offsets[off] = all
	}
	for off := n - corruptTail; off < n-4; off++ { // the last block
		offsets[off] = all
	}
	for off, want := range offsets {
		for _, mask := range []byte{0x01, 0xff} {
			data := bytes.Clone(f.data)
			data[off] ^= mask
			err := readChecked(t, f, data, Limits{})
			if err == nil {
				t.Fatalf("flip %#x at %d of %d: accepted", mask, off, n)
			}
			if !isAny(err, want...) {
				t.Fatalf("flip %#x at %d of %d: error %q matches none of %v", mask, off, n, err, want)
			}
		}
	}
}

func TestTruncated(t *testing.T) {
	f := newFixture(t, 1, 5, 10, 2000, 150000)
	n := len(f.data)
	for off := 0; off < n; off += max(1, n/corruptSteps) {
		err := readChecked(t, f, f.data[:off], Limits{})
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("truncated at %d of %d: %v, want ErrTruncated", off, n, err)
		}
	}
	for off := n - 20; off < n; off++ {
		err := readChecked(t, f, f.data[:off], Limits{})
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("truncated at %d of %d: %v, want ErrTruncated", off, n, err)
		}
	}
}

// TestBombs: content that decompresses to far more than it is, or needs a
// huge window, is refused by the limits before it costs memory.
func TestBombs(t *testing.T) {
	f := newFixture(t, 1, 5, 10)
	t.Run("huge manifest member", func(t *testing.T) {
		ms := f.copyMembers()
		ms[0].data = make([]byte, DefaultLimits.MaxManifestSize+1)
		checkRefused(t, f, pack(t, ms, nil), Limits{}, ErrLimit)
	})
	t.Run("huge unlisted member", func(t *testing.T) {
		ms := f.copyMembers()
		ms = append(ms, reg("blobs/"+strings.Repeat("0", 64), make([]byte, 50<<20)))
		checkRefused(t, f, pack(t, ms, nil), Limits{}, ErrUnlisted)
	})
	t.Run("window beyond the limit", func(t *testing.T) {
		// The frame header's window descriptor says 1 GiB (RFC 8878
		// 3.1.1.1.2: exponent 20, so 2^(10+20)): a decoder that believed it
		// would allocate that much.
		f := newFixture(t, 1, 5, 10, 300000)
		if f.data[4]&0x20 != 0 {
			t.Fatal("the writer's frame is single-segment; this test needs a window descriptor")
		}
		data := bytes.Clone(f.data)
		data[5] = 20 << 3
		checkRefused(t, f, data, Limits{}, ErrLimit)
		// And the reader's own limit is honoured below the default.
		checkRefused(t, f, f.data, Limits{MaxWindowSize: 1 << 20}, ErrLimit)
	})
	t.Run("decompressed size limit", func(t *testing.T) {
		g := newFixture(t, 1, 5, 1<<20)
		checkRefused(t, g, g.data, Limits{MaxTotalSize: 1000}, ErrLimit)
	})
}

func TestParts(t *testing.T) {
	key := testKey(t, 1)
	blobs := testBlobs(7, 10, 5000, 40000, 3000)
	const size = 12 << 10
	w, _ := writeTest(t, key, 5, blobs, Options{MaxPartSize: size})
	parts := bundlePaths(w)
	if len(parts) < 4 {
		t.Fatalf("%d parts, want at least 4", len(parts))
	}
	w2, _ := writeTest(t, key, 6, testBlobs(8, 10, 5000, 40000, 3000), Options{MaxPartSize: size})
	otherParts := bundlePaths(w2)
	w3, _ := writeTest(t, testKey(t, 2), 5, blobs, Options{MaxPartSize: size})
	strangerParts := bundlePaths(w3)
	f := &fixture{key: key, blobs: blobs}

	// damaged copies part i (1-based) of the set with edit applied.
	damaged := func(t *testing.T, i int, edit func([]byte) []byte) []string {
		dir := t.TempDir()
		var out []string
		for j, p := range parts {
			data := mustRead(t, p)
			if j+1 == i {
				data = edit(bytes.Clone(data))
			}
			q := filepath.Join(dir, filepath.Base(p))
			if err := os.WriteFile(q, data, 0o644); err != nil {
				t.Fatal(err)
			}
			out = append(out, q)
		}
		return out
	}
	flip := func(off int) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 1; return b }
	}
	jsonAt := len(PartFormat) + 1 + 40
	untrusted := bytes.Index(mustRead(t, parts[1]), []byte("untrusted comment:")) + 30
	sigLine := bytes.Index(mustRead(t, parts[1]), []byte("\nRUQ")) + 40

	cases := []struct {
		name  string
		paths func(t *testing.T) []string
		want  []error
		index int // the part the error must name (0: any)
	}{
		{"all parts", func(*testing.T) []string { return parts }, nil, 0},
		{"payload byte of part 2", func(t *testing.T) []string { return damaged(t, 2, flip(PartHeaderSize+100)) }, []error{ErrHashMismatch}, 2},
		{"last payload byte of part 3", func(t *testing.T) []string { return damaged(t, 3, flip(size-1)) }, []error{ErrHashMismatch}, 3},
		{"header JSON of part 2", func(t *testing.T) []string { return damaged(t, 2, flip(jsonAt)) }, []error{ErrSignature}, 0},
		{"header signature of part 2", func(t *testing.T) []string { return damaged(t, 2, flip(sigLine)) }, []error{ErrSignature, ErrMalformed}, 0},
		{"untrusted comment of part 2", func(t *testing.T) []string { return damaged(t, 2, flip(untrusted)) }, []error{ErrMalformed}, 0},
		{"header padding of part 2", func(t *testing.T) []string { return damaged(t, 2, flip(PartHeaderSize-1)) }, []error{ErrMalformed}, 0},
		{"part 3 truncated", func(t *testing.T) []string { return damaged(t, 3, func(b []byte) []byte { return b[:len(b)-1] }) }, []error{ErrTruncated}, 3},
		{"junk after part 2", func(t *testing.T) []string {
			return damaged(t, 2, func(b []byte) []byte { return append(b, 'x') })
		}, []error{ErrTrailingData}, 2},
		{"part 2 missing", func(*testing.T) []string { return append([]string{parts[0]}, parts[2:]...) }, []error{ErrTruncated}, 2},
		{"last part missing", func(*testing.T) []string { return parts[:len(parts)-1] }, []error{ErrTruncated}, len(parts)},
		{"part 2 twice", func(*testing.T) []string { return append(slices.Clone(parts), parts[1]) }, []error{ErrDuplicate}, 2},
		{"part 2 of another bundle", func(*testing.T) []string {
			p := slices.Clone(parts)
			p[1] = otherParts[1]
			return p
		}, []error{ErrMalformed}, 2},
		{"part 2 by another key", func(*testing.T) []string {
			p := slices.Clone(parts)
			p[1] = strangerParts[1]
			return p
		}, []error{ErrSignature}, 0},
		{"bundle file with a part", func(*testing.T) []string {
			return []string{filepath.Join("testdata", "golden", "small", "b.tar.zst"), parts[0]}
		}, []error{ErrMalformed}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := readPathsChecked(t, f, c.paths(t), Limits{})
			if c.want == nil {
				if err != nil {
					t.Fatalf("good parts refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("damaged parts accepted")
			}
			if !errors.Is(err, ErrPart) || !isAny(err, c.want...) {
				t.Fatalf("error %q: want ErrPart and one of %v", err, c.want)
			}
			var pe *PartError
			if !errors.As(err, &pe) {
				t.Fatalf("error %q is not a *PartError", err)
			}
			if c.index != 0 && pe.Index != c.index {
				t.Fatalf("error %q names part %d, want %d", err, pe.Index, c.index)
			}
		})
	}
}
