package files

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestCleanPath(t *testing.T) {
	good := []string{"a", "a/b.tar.gz", "hello/hello-2.12.tar.gz", "x y/ü"}
	bad := []string{"", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "./a", "a/", "a\\b", "a\x00b", "a\nb", "\xff", strings.Repeat("a", MaxPathLen+1)}
	for _, p := range good {
		if got, err := CleanPath(p); err != nil || got != p {
			t.Errorf("CleanPath(%q) = %q, %v", p, got, err)
		}
	}
	for _, p := range bad {
		if got, err := CleanPath(p); !errors.Is(err, ErrBadPath) || got != "" {
			t.Errorf("CleanPath(%q) = %q, %v; want ErrBadPath", p, got, err)
		}
	}
}

func TestExpand(t *testing.T) {
	for _, tc := range []struct{ tmpl, file, want string }{
		{"{file}.minisig", "hello/hello.tar.gz", "hello/hello.tar.gz.minisig"},
		{"{dir}/sigs/{name}.asc", "hello/hello.tar.gz", "hello/sigs/hello.tar.gz.asc"},
		{"{dir}/{name}.sig", "top.tar.gz", "top.tar.gz.sig"},
		{"https://sigs.example.org/{name}.sig", "a/b.tgz", "https://sigs.example.org/b.tgz.sig"},
	} {
		got, err := Expand(tc.tmpl, tc.file)
		if err != nil || got != tc.want {
			t.Errorf("Expand(%q, %q) = %q, %v; want %q", tc.tmpl, tc.file, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ tmpl, file string }{
		{"{file}", "a/b"},
		{"{nope}.sig", "a/b"},
		{"../{name}.sig", "a/b"},
		{"/{file}.sig", "a/b"},
	} {
		if got, err := Expand(tc.tmpl, tc.file); err == nil {
			t.Errorf("Expand(%q, %q) = %q; want an error", tc.tmpl, tc.file, got)
		}
	}
}

// TestParseChecksumsRealTool parses what the real sha256sum writes, both in
// text and binary mode and with "./" names, and checks every hash.
func TestParseChecksumsRealTool(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Fatal("sha256sum is needed for this test (coreutils)")
	}
	dir := t.TempDir()
	files := map[string]string{"a.tar.gz": "alpha", "b c.zip": "beta", "sub/d.txt": "delta"}
	want := map[string]string{}
	var names []string
	for n, body := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(n)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256([]byte(body))
		want["rel/"+n] = hex.EncodeToString(s[:])
		names = append(names, n)
	}
	sort.Strings(names)
	for _, args := range [][]string{names, append([]string{"-b"}, names...)} {
		cmd := exec.Command("sha256sum", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseChecksums(out, "rel")
		if err != nil {
			t.Fatalf("ParseChecksums(%q): %v", out, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseChecksums = %v, want %v", got, want)
		}
	}
	cmd := exec.Command("sh", "-c", "sha256sum ./a.tar.gz")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseChecksums(out, "")
	if err != nil || got["a.tar.gz"] != want["rel/a.tar.gz"] {
		t.Fatalf("./ name: %v, %v", got, err)
	}
}

func TestParseChecksumsRejects(t *testing.T) {
	h := strings.Repeat("ab", 32)
	h2 := strings.Repeat("cd", 32)
	for _, bad := range []string{
		"nothex",
		strings.Repeat("zz", 32) + "  a",
		h + "  ../etc/passwd",
		h + "  /abs",
		h + " x", // one space, no '*'
		h + "  a\n" + h2 + "  a",
		h + "  " + strings.Repeat("n", MaxPathLen+1),
	} {
		if got, err := ParseChecksums([]byte(bad), ""); !errors.Is(err, ErrChecksums) || got != nil {
			t.Errorf("ParseChecksums(%q) = %v, %v; want ErrChecksums", bad, got, err)
		}
	}
	upper := strings.ToUpper(h) + "  a\r\n\n" + h + "  a\n"
	got, err := ParseChecksums([]byte(upper), "")
	if err != nil || got["a"] != h {
		t.Fatalf("upper case and CRLF: %v, %v", got, err)
	}
}

func TestParseListing(t *testing.T) {
	got, err := ParseListing([]byte("# releases\nhello/a.tar.gz\n\n./hello/b.tar.gz\nhello/a.tar.gz\n  jq/c  \n./#hash\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"hello/a.tar.gz", "hello/b.tar.gz", "jq/c", "#hash"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseListing = %q, want %q", got, want)
	}
	// "./ x" would name " x", which a trimmed line cannot say back (found
	// by FuzzParseListing).
	for _, bad := range []string{"a/../../b", "/x", "a\\b", "./ x", "./\tx"} {
		if got, err := ParseListing([]byte(bad)); !errors.Is(err, ErrListing) || got != nil {
			t.Errorf("ParseListing(%q) = %v, %v; want ErrListing", bad, got, err)
		}
	}
}

func TestPackagesDetached(t *testing.T) {
	c := Config{Name: "tools", Type: Type, URL: "https://dl.example.org/rel",
		Files:      []string{"hello/*.tar.gz", "jq/jq-1.7.tar.gz", "nothing/*"},
		Signatures: []string{"{file}.minisig", "https://keys.example.org/{name}.asc"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	listing := []string{"hello/hello-2.12.tar.gz", "hello/hello-2.12.tar.gz.minisig", "hello/sub/x.tar.gz", "jq/jq-1.7.tar.gz"}
	pkgs, rej, err := c.Packages(listing, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 || pkgs[0].Name != "hello/hello-2.12.tar.gz" || pkgs[1].Name != "jq/jq-1.7.tar.gz" {
		t.Fatalf("packages = %+v", pkgs)
	}
	p := pkgs[0]
	if p.URL != "https://dl.example.org/rel/hello/hello-2.12.tar.gz" || p.Path != "tools/hello/hello-2.12.tar.gz" {
		t.Fatalf("package = %+v", p)
	}
	wantSigs := []Signature{
		{URL: "https://dl.example.org/rel/hello/hello-2.12.tar.gz.minisig", Path: "tools/hello/hello-2.12.tar.gz.minisig"},
		{URL: "https://keys.example.org/hello-2.12.tar.gz.asc", Path: "tools/hello/hello-2.12.tar.gz.asc"},
	}
	if !reflect.DeepEqual(p.Signatures, wantSigs) {
		t.Fatalf("signatures = %+v", p.Signatures)
	}
	if len(rej) != 1 || rej[0].Name != "nothing/*" {
		t.Fatalf("rejected = %+v", rej)
	}
	// A glob without a listing or checksum list is a configuration error.
	if _, _, err := c.Packages(nil, nil, ""); !errors.Is(err, ErrConfig) {
		t.Fatalf("glob without universe: %v", err)
	}
}

func TestPackagesChecksums(t *testing.T) {
	c := Config{Name: "node", Type: Type, URL: "https://nodejs.example.org/dist/",
		Files:     []string{"v1/*.tar.xz", "v1/missing.zip"},
		Checksums: "v1/SHASUMS256.txt.asc"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	list, sig, dir := c.ChecksumsURLs()
	if list != "https://nodejs.example.org/dist/v1/SHASUMS256.txt.asc" || sig != "" || dir != "v1" {
		t.Fatalf("ChecksumsURLs = %q %q %q", list, sig, dir)
	}
	if got := c.Publish(list); got != "node/v1/SHASUMS256.txt.asc" {
		t.Fatalf("Publish = %q", got)
	}
	h := strings.Repeat("ab", 32)
	sums, err := ParseChecksums([]byte(h+"  a.tar.xz\n"+h+"  b.tar.xz\n"+h+"  c.zip\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, rej, err := c.Packages(nil, sums, "v1/SHASUMS256.txt.asc")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 || pkgs[0].SHA256 != h || pkgs[1].Name != "v1/b.tar.xz" || len(pkgs[0].Signatures) != 0 {
		t.Fatalf("packages = %+v", pkgs)
	}
	if len(rej) != 1 || rej[0].Name != "v1/missing.zip" || !strings.Contains(rej[0].Reason, "not listed") {
		t.Fatalf("rejected = %+v", rej)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Name: "t", Type: Type, URL: "http://x/", Files: []string{"a"}, Signatures: []string{"{file}.sig"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"no url":       func(c *Config) { c.URL = "" },
		"ftp":          func(c *Config) { c.URL = "ftp://x/" },
		"no files":     func(c *Config) { c.Files = nil },
		"bad file":     func(c *Config) { c.Files = []string{"../a"} },
		"bad glob":     func(c *Config) { c.Files = []string{"[a"} },
		"nothing":      func(c *Config) { c.Signatures = nil },
		"bad template": func(c *Config) { c.Signatures = []string{"{x}"} },
		"sig no list":  func(c *Config) { c.ChecksumsSignature = "S.sig" },
		"bad list":     func(c *Config) { c.Signatures = nil; c.Checksums = "../SUMS" },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate = %v, want ErrConfig", name, err)
		}
	}
}

func FuzzParseChecksums(f *testing.F) {
	h := strings.Repeat("0123456789abcdef", 4)
	seeds := []string{
		h + "  hello/hello-2.12.tar.gz\n" + h + " *jq.tar.gz\n",
		h + "  ./a\r\n\n",
		"garbage",
	}
	if len(seeds) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sums, err := ParseChecksums(data, "")
		if err != nil {
			if sums != nil {
				t.Fatal("result returned with an error")
			}
			return
		}
		// Every name is safe; re-rendering parses to the same map.
		var b strings.Builder
		for n, s := range sums {
			if _, err := CleanPath(n); err != nil {
				t.Fatalf("unsafe name accepted: %v", err)
			}
			b.WriteString(s + "  " + n + "\n")
		}
		again, err := ParseChecksums([]byte(b.String()), "")
		if err != nil || !reflect.DeepEqual(again, sums) {
			t.Fatalf("round trip: %v, %v", again, err)
		}
	})
}

func FuzzParseListing(f *testing.F) {
	seeds := []string{"# c\nhello/a.tar.gz\n./b\n", "a\na\n", "../x"}
	if len(seeds) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseListing(data)
		if err != nil {
			if l != nil {
				t.Fatal("result returned with an error")
			}
			return
		}
		for _, p := range l {
			if _, err := CleanPath(p); err != nil {
				t.Fatalf("unsafe path accepted: %v", err)
			}
		}
		// Written back with "./" before each name, as a listing must
		// write a name that starts with "#".
		var b strings.Builder
		for _, p := range l {
			b.WriteString("./" + p + "\n")
		}
		again, err := ParseListing([]byte(b.String()))
		if err != nil || !reflect.DeepEqual(again, l) {
			t.Fatalf("round trip: %q -> %q, %v", l, again, err)
		}
	})
}

// FuzzExpand: the hand-written expansion gives what strings.Replacer gives
// for the three placeholders.
func FuzzExpand(f *testing.F) {
	for _, s := range [][2]string{{"{file}.asc", "a/b.tar.gz"}, {"{dir}/SIGS/{name}.sig", "x.tgz"}, {"{{file}}", "a"}, {"{fil{name}", "d/e"}, {"https://h/{file}{file}", "q"}, {"plain", "p"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, tmpl, file string) {
		want := strings.NewReplacer("{file}", file, "{name}", path.Base(file), "{dir}", path.Dir(file)).Replace(tmpl)
		if got := expand(tmpl, file); got != want {
			t.Fatalf("expand(%q, %q) = %q, strings.Replacer gives %q", tmpl, file, got, want)
		}
	})
}

// BenchmarkExpand: one signature URL per file, as sync makes 20,000 of
// them on the benchmark's set; "replacer" is the strings.Replacer per call
// that expand replaced.
func BenchmarkExpand(b *testing.B) {
	const tmpl, file = "{file}.minisig", "pkgs/p01234.bin"
	b.Run("replacer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			strings.NewReplacer("{file}", file, "{name}", path.Base(file), "{dir}", path.Dir(file)).Replace(tmpl)
		}
	})
	b.Run("expand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			expand(tmpl, file)
		}
	})
}
