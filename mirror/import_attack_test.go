package mirror

// The malicious-bundle battery (issue 7, docs/SECURITY.md): every hostile
// bundle below is given to Import against a repository that serves two
// generations already. Each must be refused, and after all of them the
// served tree, every served file and state.json are byte-identical (files
// lost: 0), the log records one refusal per attack, and the next good
// bundle still imports. Helpers (impBundle, impRecompress, impTreeHash)
// live in import_test.go.

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/mirror/repo"
)

type tarMember struct {
	hdr  tar.Header
	data []byte
}

// bundleMembers decompresses a one-file bundle and returns its tar members.
func bundleMembers(t *testing.T, path string) []tarMember {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	plain, err := dec.DecodeAll(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(plain))
	var ms []tarMember
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
		ms = append(ms, tarMember{*h, data})
	}
}

// packBundle writes members as a tar, compressed in one zstd frame, with
// extra bytes appended to the tar when given; it returns the file's path.
func packBundle(t *testing.T, ms []tarMember, extra []byte, opts ...zstd.EOption) string {
	t.Helper()
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	for _, m := range ms {
		h := m.hdr
		if h.Typeflag == tar.TypeReg {
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
	plain.Write(extra)
	enc, err := zstd.NewWriter(nil, append([]zstd.EOption{zstd.WithWindowSize(1 << 20), zstd.WithEncoderCRC(true)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "attack.tar.zst")
	if err := os.WriteFile(p, enc.EncodeAll(plain.Bytes(), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// withMember returns ms with m inserted before the last member (a blob).
func withMember(ms []tarMember, m tarMember) []tarMember {
	out := append([]tarMember{}, ms[:len(ms)-1]...)
	return append(append(out, m), ms[len(ms)-1])
}

// servedFiles returns every served path -> content of the repository.
func servedFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	root := filepath.Join(dir, repo.CurrentLink) + "/"
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAttackBundleBattery(t *testing.T) {
	key, other := impKey(t, 1), impKey(t, 2)
	out, dir := t.TempDir(), t.TempDir()
	files1 := map[string][]byte{"tools/a.tar.gz": impData("a", 100<<10), "tools/b.tar.gz": impData("b", 50<<10)}
	files2 := map[string][]byte{"tools/a.tar.gz": files1["tools/a.tar.gz"], "tools/c.tar.gz": impData("c", 80<<10)}
	b1, _ := impBundle(t, out, key, impSpec{seq: 1, files: files1})
	b2, _ := impBundle(t, out, key, impSpec{seq: 2, base: 1, files: files2, carry: []string{"tools/c.tar.gz"}})
	now := impT0.Add(time.Hour)
	if _, err := Import(context.Background(), impOpts(dir, key, now), append(b1, b2...)); err != nil {
		t.Fatal(err)
	}
	next := map[string][]byte{"tools/a.tar.gz": files1["tools/a.tar.gz"], "tools/c.tar.gz": files2["tools/c.tar.gz"], "tools/d.tar.gz": impData("d", 300<<10)}
	// A would-be-good sequence 3 to damage; and a split one.
	good3, _ := impBundle(t, out, key, impSpec{seq: 3, base: 2, files: next, carry: []string{"tools/d.tar.gz"}})
	split3, _ := impBundle(t, out, key, impSpec{seq: 3, base: 2, files: next, carry: []string{"tools/d.tar.gz"}, partSize: 64 << 10})
	splitOther, _ := impBundle(t, out, key, impSpec{seq: 3, base: 2, files: map[string][]byte{"tools/a.tar.gz": files1["tools/a.tar.gz"], "tools/c.tar.gz": files2["tools/c.tar.gz"], "tools/e.tar.gz": impData("e", 300<<10)}, carry: []string{"tools/e.tar.gz"}, partSize: 64 << 10})
	splitStranger, _ := impBundle(t, out, other, impSpec{seq: 3, base: 2, files: next, carry: []string{"tools/d.tar.gz"}, partSize: 64 << 10})
	if len(split3) < 3 || len(splitOther) < 3 || len(splitStranger) < 3 {
		t.Fatalf("split bundles have %d/%d/%d parts, want 3 or more", len(split3), len(splitOther), len(splitStranger))
	}
	ms := bundleMembers(t, good3[0])

	// The repacking itself keeps a bundle valid: the attacks below are
	// refused for what they change, not for how they were made.
	if r, err := bundle.Open(context.Background(), []string{packBundle(t, ms, nil)}, key.Public(), bundle.Limits{}); err != nil {
		t.Fatalf("repacked good bundle refused: %v", err)
	} else {
		r.Close()
	}

	blob := ms[len(ms)-1]
	special := func(name string, typ byte, link string) tarMember {
		h := blob.hdr
		h.Name, h.Typeflag, h.Linkname, h.Size = name, typ, link, 0
		return tarMember{h, nil}
	}
	copyFile := func(src, dst string) string {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	swapPart := func(parts []string, i int, with string) []string {
		d := t.TempDir()
		var outp []string
		for j, p := range parts {
			src := p
			if j == i {
				src = with
			}
			outp = append(outp, copyFile(src, filepath.Join(d, filepath.Base(p))))
		}
		return outp
	}

	type attack struct {
		name  string
		paths func() []string
		want  []error // any of; nil: any refusal
	}
	attacks := []attack{
		{"wrong operator key", func() []string {
			p, _ := impBundle(t, out, other, impSpec{seq: 3, base: 2, files: next, carry: []string{"tools/d.tar.gz"}})
			return p
		}, []error{bundle.ErrSignature}},
		{"older sequence", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 1, files: map[string][]byte{"tools/a.tar.gz": []byte("old release")}})
			return p
		}, []error{ErrRollback}},
		{"replayed sequence, other content", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 2, files: next})
			return p
		}, []error{ErrRollback}},
		{"missing base", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 9, base: 8, files: next, carry: []string{"tools/d.tar.gz"}})
			return p
		}, []error{ErrMissingBase}},
		{"expired", func() []string {
			p, _ := impBundle(t, out, key, impSpec{seq: 3, created: impT0.Add(-72 * time.Hour), expires: impT0.Add(-time.Hour), files: next})
			return p
		}, []error{ErrExpired}},
		{"tampered manifest", func() []string {
			return impRecompress(t, good3[0], func(tar []byte) int { return bytes.Index(tar, []byte(`"tools/d.tar.gz"`)) + 8 })
		}, []error{bundle.ErrSignature}},
		{"tampered blob", func() []string {
			return impRecompress(t, good3[0], func(tar []byte) int { return len(tar) - 4096 })
		}, []error{bundle.ErrHashMismatch}},
		{"blob swapped for another bundle's blob", func() []string {
			m2 := bundleMembers(t, b2[0])
			c := append([]tarMember{}, ms...)
			c[len(c)-1] = tarMember{c[len(c)-1].hdr, m2[len(m2)-1].data}
			return []string{packBundle(t, c, nil)}
		}, []error{bundle.ErrHashMismatch}},
		{"truncated", func() []string {
			b, _ := os.ReadFile(good3[0])
			return []string{writeBytes(t, b[:len(b)/2])}
		}, []error{bundle.ErrTruncated, bundle.ErrCorrupt}},
		{"junk after the frame", func() []string {
			b, _ := os.ReadFile(good3[0])
			return []string{writeBytes(t, append(b, "junk"...))}
		}, []error{bundle.ErrTrailingData}},
		{"empty file", func() []string { return []string{writeBytes(t, nil)} }, []error{bundle.ErrTruncated}},
		{"endless zeros (/dev/zero)", func() []string { return []string{"/dev/zero"} }, nil},
		{"path traversal member", func() []string {
			m := blob
			m.hdr.Name = "blobs/../../../etc/cron.d/evil"
			return []string{packBundle(t, withMember(ms, m), nil)}
		}, []error{bundle.ErrUnsafePath}},
		{"absolute member", func() []string {
			m := blob
			m.hdr.Name = "/etc/cron.d/evil"
			return []string{packBundle(t, withMember(ms, m), nil)}
		}, []error{bundle.ErrUnsafePath}},
		{"symlink member", func() []string {
			return []string{packBundle(t, withMember(ms, special("blobs/evil", tar.TypeSymlink, "/etc/passwd")), nil)}
		}, []error{bundle.ErrUnsafePath}},
		{"hard link member", func() []string {
			return []string{packBundle(t, withMember(ms, special("blobs/evil", tar.TypeLink, "/etc/passwd")), nil)}
		}, []error{bundle.ErrUnsafePath}},
		{"device member", func() []string {
			return []string{packBundle(t, withMember(ms, special("blobs/evil", tar.TypeChar, "")), nil)}
		}, []error{bundle.ErrUnsafePath}},
		{"decompression bomb: 32 MiB of zeros in an unlisted member", func() []string {
			m := blob
			m.hdr.Name = "blobs/" + strings.Repeat("0", 64)
			m.data = make([]byte, 32<<20)
			return []string{packBundle(t, withMember(ms, m), nil, zstd.WithEncoderLevel(zstd.SpeedFastest))}
		}, []error{bundle.ErrUnlisted, bundle.ErrLimit}},
		{"decompression bomb: 512 MiB window", func() []string {
			return []string{packBundle(t, ms, nil, zstd.WithWindowSize(zstd.MaxWindowSize), zstd.WithSingleSegment(false))}
		}, []error{bundle.ErrLimit, bundle.ErrMalformed}}, // the reader takes only the writer's 4 or 8 MiB windows
		{"oversized manifest (65 MiB)", func() []string {
			c := append([]tarMember{}, ms...)
			c[0] = tarMember{c[0].hdr, bytes.Repeat([]byte(" "), 65<<20)}
			return []string{packBundle(t, c, nil, zstd.WithEncoderLevel(zstd.SpeedFastest))}
		}, []error{bundle.ErrLimit}},
		{"part swapped from another bundle", func() []string { return swapPart(split3, 1, splitOther[1]) }, []error{bundle.ErrPart}},
		{"part signed by another key", func() []string { return swapPart(split3, 1, splitStranger[1]) }, []error{bundle.ErrPart}},
		{"part missing", func() []string { return append([]string{split3[0]}, split3[2:]...) }, []error{bundle.ErrPart}},
	}

	before := impTreeHash(t, dir)
	servedBefore := servedFiles(t, dir)
	stateBefore, _ := os.ReadFile(filepath.Join(dir, repo.StateFile))
	refused := 0
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			start := time.Now()
			res, err := Import(context.Background(), impOpts(dir, key, now), a.paths())
			if err == nil || len(res) != 0 {
				t.Fatalf("imported: %+v", res)
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("not a refusal: %v", err)
			}
			if a.want != nil && !anyIs(err, a.want) {
				t.Fatalf("refused for %v; want one of %v", err, a.want)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Fatalf("refusal took %v", d)
			}
			refused++
			t.Logf("refused in %v: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
	after := servedFiles(t, dir)
	lost := 0
	for p, b := range servedBefore {
		if !bytes.Equal(after[p], b) {
			lost++
			t.Errorf("served file %s changed or lost", p)
		}
	}
	if len(after) != len(servedBefore) || impTreeHash(t, dir) != before {
		t.Errorf("served tree changed: %d files before, %d after", len(servedBefore), len(after))
	}
	if stateAfter, _ := os.ReadFile(filepath.Join(dir, repo.StateFile)); !bytes.Equal(stateBefore, stateAfter) {
		t.Error("state.json changed")
	}
	log, _ := repo.ReadLog(dir, len(attacks))
	refusals := 0
	for _, e := range log {
		if e.Result == repo.ResultRefused {
			refusals++
		}
	}
	if refusals != len(attacks) {
		t.Errorf("log holds %d refusals of the last %d entries, want %d", refusals, len(log), len(attacks))
	}
	t.Logf("bundle attacks tried %d, refused %d, served files lost %d (of %d)", len(attacks), refused, lost, len(servedBefore))
	// The first bundle given again is not a rollback either: a no-op that
	// says so, nothing switched.
	if res, err := Import(context.Background(), impOpts(dir, key, now), b1); err != nil || len(res) != 1 || res[0].Result != repo.ResultAlready {
		t.Fatalf("bundle 1 replayed: %+v %v", res, err)
	}
	if impTreeHash(t, dir) != before {
		t.Fatal("replaying bundle 1 changed the served tree")
	}
	// And the good bundle still imports after all of them.
	if res, err := Import(context.Background(), impOpts(dir, key, now), good3); err != nil || res[0].Sequence != 3 {
		t.Fatalf("good bundle after the attacks: %+v %v", res, err)
	}
	if got := servedFiles(t, dir)["tools/d.tar.gz"]; !bytes.Equal(got, next["tools/d.tar.gz"]) {
		t.Fatal("the good bundle's new file is not served")
	}
}

func anyIs(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func writeBytes(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.tar.zst")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
