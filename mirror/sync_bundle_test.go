package mirror

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mirror-tool/mirror/bundle"
)

// TestSetDigestIsJSON: the streamed digest is the SHA-256 of json.Marshal of
// the same fields, so that a state written by an earlier version (whose
// Digest is that hash) still tells "nothing new" after an upgrade.
func TestSetDigestIsJSON(t *testing.T) {
	pkgs := []bundle.Package{}
	tree := []bundle.Entry{}
	for i := range 50 {
		p := fmt.Sprintf("p/<f&%d>é\u2028.tgz", i)
		pkgs = append(pkgs, bundle.Package{Source: "s", Name: p, Path: "s/" + p, Size: int64(i), SHA256: sumOf(p),
			Signatures: []bundle.PackageSignature{{Path: "s/" + p + ".minisig", SHA256: sumOf(p + "sig"), Scheme: "minisign"}}, Keys: []string{"k", "\"q\""}})
		tree = append(tree, bundle.Entry{Path: "s/" + p, SHA256: sumOf(p), Size: int64(i)})
	}
	pkgs[3].Signatures, pkgs[4].Keys = nil, nil
	sources := []bundle.Source{{Name: "s", Type: "files", URL: "https://example.org/?a=1&b=<2>"}}
	for name, tc := range map[string]digestFields{
		"set":         {sources, sumOf("trust"), pkgs, tree},
		"empty":       {sources, sumOf("trust"), []bundle.Package{}, []bundle.Entry{}},
		"nil":         {nil, "", nil, nil},
		"one package": {sources, "t", pkgs[:1], tree[:1]},
	} {
		checkDigestIsJSON(t, name, tc)
	}
}

// checkDigestIsJSON checks that setDigest hashes json.Marshal(tc).
func checkDigestIsJSON(t *testing.T, name string, tc digestFields) {
	t.Helper()
	want, err := json.Marshal(tc)
	if err != nil {
		t.Fatal(err)
	}
	if got := setDigest(tc.Sources, tc.Trust, tc.Packages, tc.Tree); got != sha256Hex(want) {
		t.Errorf("%s: digest %s, want the SHA-256 of json.Marshal's %d bytes %.200s", name, got, len(want), want)
	}
}
