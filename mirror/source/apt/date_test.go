package apt

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// SignedDate reads the same Date from the fixture's InRelease (clearsigned
// by gpg), from forms of it whose signature still verifies (CRLF line
// endings, a dash-escaped line) and from its plain Release.
func TestSignedDate(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "fixtures", "apt", "repo", "dists", "stable")
	in, err := os.ReadFile(filepath.Join(dir, "InRelease"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := os.ReadFile(filepath.Join(dir, "Release"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := SignedDate(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SignedDate(plain)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := ParseRelease(plain)
	if err != nil {
		t.Fatal(err)
	}
	if a.IsZero() || !a.Equal(b) || !a.Equal(rel.Date) {
		t.Fatalf("InRelease date %v, Release date %v, parsed %v", a, b, rel.Date)
	}
	for name, doc := range map[string][]byte{
		"CRLF":         bytes.ReplaceAll(in, []byte("\n"), []byte("\r\n")),
		"dash-escaped": bytes.Replace(in, []byte("\n\n"), []byte("\n\n- "), 1),
	} {
		if d, err := SignedDate(doc); err != nil || !d.Equal(a) {
			t.Errorf("%s InRelease: %v, %v; want %v", name, d, err, a)
		}
	}
	for _, bad := range []string{"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256", "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nDate: x\n"} {
		if _, err := SignedDate([]byte(bad)); err == nil {
			t.Errorf("SignedDate(%q) = nil error", bad)
		}
	}
}
