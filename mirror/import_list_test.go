package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/internal/operator"
)

// listBundle writes a bundle whose one package, tools:rel/x.tar.gz, was taken
// from a signed checksum list, laid out as sync lays it out: the list (and
// its detached signature, if any) in the package's signatures and the tree.
func listBundle(t *testing.T, out string, seq uint64, op minisign.PrivateKey, trust string, pkg []byte, docs map[string][]byte, sigs []bundle.PackageSignature) []string {
	t.Helper()
	m := &bundle.Manifest{Sequence: seq, Created: impT0, Expires: impT0.Add(24 * time.Hour), ToolVersion: "test",
		Sources: []bundle.Source{{Name: "tools", Type: "files", URL: "https://example.org/"}},
		Trust:   bundle.Trust{SHA256: impSum([]byte(trust)), File: trust}}
	byHash := map[string][]byte{impSum(pkg): pkg}
	m.Tree = []bundle.Entry{{Path: "tools/rel/x.tar.gz", SHA256: impSum(pkg), Size: int64(len(pkg))}}
	for i := range sigs {
		d := docs[sigs[i].Path]
		sigs[i].SHA256 = impSum(d)
		byHash[sigs[i].SHA256] = d
		m.Tree = append(m.Tree, bundle.Entry{Path: sigs[i].Path, SHA256: sigs[i].SHA256, Size: int64(len(d))})
	}
	for h, d := range byHash {
		m.Blobs = append(m.Blobs, bundle.Blob{SHA256: h, Size: int64(len(d))})
	}
	m.Packages = []bundle.Package{{Source: "tools", Name: "rel/x.tar.gz", Version: "1", Path: "tools/rel/x.tar.gz",
		Size: int64(len(pkg)), SHA256: impSum(pkg), Signatures: sigs, Keys: []string{"sums"}}}
	w, err := bundle.Write(context.Background(), out, fmt.Sprint("list", seq), m, op,
		func(h string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(byHash[h])), nil }, bundle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return w.Paths[:1]
}

// --recheck re-derives packages taken from a signed checksum list from the
// list: detached (minisign) and clearsigned (OpenPGP) lists pass; a list that
// does not carry the package's hash, or whose signer is out of scope, fails.
func TestImportRecheckChecksumList(t *testing.T) {
	op := impKey(t, 1)
	sums := impKey(t, 9)
	pgp, err := operator.Generate(rand.NewChaCha8([32]byte{'p'}), impT0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	trustFor := func(allow string) string {
		return fmt.Sprintf("[[trust.key]]\nname = \"sums\"\nminisign = %q\nallow = [%q]\n\n[[trust.key]]\nname = \"pgp\"\nopenpgp = '''\n%s'''\nallow = [%q]\n",
			sums.Public().String(), allow, pgp.ArmoredPublic(), allow)
	}
	pkg := impData("x", 10<<10)
	list := []byte(impSum(pkg) + "  x.tar.gz\n" + impSum([]byte("y")) + "  y.tar.gz\n")
	wrongList := []byte(impSum([]byte("other")) + "  x.tar.gz\n")
	detached := func(l []byte) (map[string][]byte, []bundle.PackageSignature) {
		s, err := sums.Sign(bytes.NewReader(l), "t", "u")
		if err != nil {
			t.Fatal(err)
		}
		return map[string][]byte{"tools/rel/SHA256SUMS": l, "tools/rel/SHA256SUMS.minisig": s.Marshal()},
			[]bundle.PackageSignature{{Path: "tools/rel/SHA256SUMS", Scheme: schemeChecksums}, {Path: "tools/rel/SHA256SUMS.minisig", Scheme: "minisign"}}
	}
	clearsigned := func(l []byte) (map[string][]byte, []bundle.PackageSignature) {
		var b bytes.Buffer
		if err := pgp.ClearSign(&b, l, impT0.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		return map[string][]byte{"tools/rel/SHA256SUMS.asc": b.Bytes()},
			[]bundle.PackageSignature{{Path: "tools/rel/SHA256SUMS.asc", Scheme: "openpgp" + suffixClearsigned}}
	}
	for _, tc := range []struct {
		name  string
		shape func([]byte) (map[string][]byte, []bundle.PackageSignature)
		list  []byte
		allow string
		want  string // "" = accepted
	}{
		{"detached list", detached, list, "tools:rel/*", ""},
		{"clearsigned list", clearsigned, list, "tools:rel/*", ""},
		{"detached list without the package's hash", detached, wrongList, "tools:rel/*", "lists rel/x.tar.gz with sha256"},
		{"clearsigned list without the package's hash", clearsigned, wrongList, "tools:rel/*", "lists rel/x.tar.gz with sha256"},
		{"detached list signer out of scope", detached, list, "tools:other/*", "not accepted"},
		{"clearsigned list signer out of scope", clearsigned, list, "tools:other/*", "not accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, dir := t.TempDir(), t.TempDir()
			docs, sigs := tc.shape(tc.list)
			paths := listBundle(t, out, 1, op, trustFor(tc.allow), pkg, docs, sigs)
			o := impOpts(dir, op, impT0.Add(time.Hour))
			o.Recheck = true
			_, err := Import(context.Background(), o, paths)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("--recheck refused a package proven by its checksum list: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrRecheck) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrRecheck containing %q", err, tc.want)
			}
		})
	}
}
