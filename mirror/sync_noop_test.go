package mirror

import (
	"encoding/json"
	"testing"

	"github.com/mirror-tool/mirror/bundle"
)

// digestSeeds are strings that take each branch of appendJSONString: plain
// ASCII, the characters encoding/json escapes for HTML, quotes and
// backslashes, control characters, DEL, U+2028/U+2029, other UTF-8 and
// invalid UTF-8.
var digestSeeds = []string{"", "p/f000001.tgz", "a<b", "a>b", "a&b", `q"q`, `q\q`, "tab\t", "nl\n", "nul\x00", "\x1f", "\x7f", "x\u2028y", "x\u2029y", "é", "\xff\xfe", "https://example.org/?a=1&b=<2>"}

// FuzzSetDigestIsJSON: the hand-appended digest is the SHA-256 of
// json.Marshal of the same fields, for any strings and sizes (the state's
// Digest written by earlier versions must still compare equal).
func FuzzSetDigestIsJSON(f *testing.F) {
	if len(digestSeeds) == 0 {
		f.Fatal("no seeds")
	}
	for i, s := range digestSeeds {
		f.Add(s, digestSeeds[(i+1)%len(digestSeeds)], int64(i)*-7919, uint8(i))
	}
	f.Fuzz(func(t *testing.T, a, b string, size int64, shape uint8) {
		pkg := bundle.Package{Source: a, Name: b, Version: a + b, Path: b + a, Size: size, SHA256: a,
			Signatures: []bundle.PackageSignature{{Path: a, SHA256: b, Scheme: a}, {Path: b}}, Keys: []string{b, a}}
		if shape&1 != 0 {
			pkg.Signatures = nil
		}
		if shape&2 != 0 {
			pkg.Keys = nil
		}
		if shape&4 != 0 {
			pkg.Keys = []string{}
		}
		tc := digestFields{Sources: []bundle.Source{{Name: a, Type: b, URL: a}}, Trust: b,
			Packages: []bundle.Package{pkg, {}}, Tree: []bundle.Entry{{Path: a, SHA256: b, Size: -size}, {}}}
		if shape&8 != 0 {
			tc.Sources, tc.Packages, tc.Tree = nil, nil, nil
		}
		want, err := json.Marshal(tc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := setDigest(tc.Sources, tc.Trust, tc.Packages, tc.Tree)
		if err != nil {
			t.Fatal(err)
		}
		if got != sha256Hex(want) {
			t.Errorf("digest %s, want the SHA-256 of %s", got, want)
		}
	})
}

// TestSetDigestLargeSet: a set larger than setDigest's buffer (flushed to
// the hash as it fills) still hashes json.Marshal's bytes.
func TestSetDigestLargeSet(t *testing.T) {
	var tc digestFields
	for i := range 3000 {
		s := digestSeeds[i%len(digestSeeds)]
		tc.Packages = append(tc.Packages, bundle.Package{Source: "s", Name: s, Path: "p/" + s, Size: int64(i), SHA256: sumOf(s),
			Signatures: []bundle.PackageSignature{{Path: "p/" + s + ".minisig", SHA256: sumOf(s + "sig"), Scheme: "minisign"}}, Keys: []string{"k"}})
		tc.Tree = append(tc.Tree, bundle.Entry{Path: "p/" + s, SHA256: sumOf(s), Size: int64(i)})
	}
	want, err := json.Marshal(tc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := setDigest(tc.Sources, tc.Trust, tc.Packages, tc.Tree)
	if err != nil {
		t.Fatal(err)
	}
	if got != sha256Hex(want) {
		t.Errorf("digest %s, want the SHA-256 of json.Marshal's %d bytes", got, len(want))
	}
}
