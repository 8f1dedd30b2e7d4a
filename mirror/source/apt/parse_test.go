package apt

import (
	"bytes"
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseControl(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Paragraph
		err      bool
	}{
		{name: "empty", in: ""},
		{name: "one", in: "A: 1\nB:  two \n", want: []Paragraph{{Fields: []Field{{"A", "1"}, {"B", "two"}}}}},
		{name: "multi", in: "SHA256:\n abc 1 x\n def 2 y\nZ: z\n", want: []Paragraph{{Fields: []Field{{"SHA256", "\n abc 1 x\n def 2 y"}, {"Z", "z"}}}}},
		{name: "two paragraphs", in: "\n\nA: 1\n \t\nB: 2\n\n\n", want: []Paragraph{{Fields: []Field{{"A", "1"}}}, {Fields: []Field{{"B", "2"}}}}},
		{name: "description dot", in: "D: x\n line\n .\n more\n", want: []Paragraph{{Fields: []Field{{"D", "x\n line\n .\n more"}}}}},
		{name: "no final newline", in: "A: 1", want: []Paragraph{{Fields: []Field{{"A", "1"}}}}},
		{name: "duplicate", in: "A: 1\na: 2\n", err: true},
		{name: "continuation first", in: " x\n", err: true},
		{name: "no colon", in: "A 1\n", err: true},
		{name: "empty name", in: ": 1\n", err: true},
		{name: "comment name", in: "#A: 1\n", err: true},
		{name: "nul", in: "A: \x00\n", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseControl([]byte(tc.in))
			if tc.err {
				if err == nil || !errors.Is(err, ErrControl) || got != nil {
					t.Fatalf("got %v, %v; want ErrControl and nothing", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d paragraphs, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i].Fields, tc.want[i].Fields) {
					t.Errorf("paragraph %d: got %q, want %q", i, got[i].Fields, tc.want[i].Fields)
				}
			}
		})
	}
}

func TestParseControlLimits(t *testing.T) {
	many := strings.Repeat("A: 1\n\n", MaxParagraphs+1)
	if ps, err := ParseControl([]byte(many)); !errors.Is(err, ErrControl) || ps != nil {
		t.Fatalf("%d paragraphs: got %v", MaxParagraphs+1, err)
	}
	if _, err := ParseControl([]byte(strings.Repeat("A: 1\n\n", MaxParagraphs))); err != nil {
		t.Fatalf("%d paragraphs: %v", MaxParagraphs, err)
	}
	var b strings.Builder
	for i := range MaxFields + 1 {
		b.WriteString("F" + strings.Repeat("x", i) + ": 1\n")
	}
	if _, err := ParseControl([]byte(b.String())); err == nil {
		t.Fatalf("%d fields accepted", MaxFields+1)
	}
	long := "A: " + strings.Repeat("x", MaxFieldSize+1) + "\n"
	if _, err := ParseControl([]byte(long)); err == nil {
		t.Fatal("over-long field accepted")
	}
}

// TestParseFixturePackages parses apt-ftparchive's real output.
func TestParseFixturePackages(t *testing.T) {
	pkgs, err := ParsePackages(readFixture(t, "repo/dists/stable/main/binary-amd64/Packages"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]*Package{}
	for i := range pkgs {
		names[pkgs[i].Name] = &pkgs[i]
	}
	want := []string{"bigtool", "greet-base", "greet-data", "greet-data-alt", "hello", "libgreet1", "tinymta"}
	if len(pkgs) != len(want) {
		t.Fatalf("got %d packages, want %d", len(pkgs), len(want))
	}
	for _, n := range want {
		if names[n] == nil {
			t.Fatalf("package %s missing", n)
		}
	}
	h := names["hello"]
	if h.Version != "1.0" || h.Architecture != "amd64" || h.Filename != "pool/main/h/hello/hello_1.0_amd64.deb" || h.Size <= 0 || len(h.SHA256) != 64 {
		t.Fatalf("hello: %+v", h)
	}
	if got := groupString(h.Depends[0]) + "," + groupString(h.Depends[1]); got != "libgreet1 (>= 1.0),default-mta | mail-transport-agent" {
		t.Fatalf("hello Depends: %s", got)
	}
	if len(h.PreDepends) != 1 || h.PreDepends[0][0].Name != "greet-base" {
		t.Fatalf("hello Pre-Depends: %v", h.PreDepends)
	}
	if p := names["tinymta"].Provides; len(p) != 1 || p[0].Name != "mail-transport-agent" {
		t.Fatalf("tinymta Provides: %v", p)
	}
	if names["greet-data"].Architecture != "all" {
		t.Fatal("greet-data is not Architecture: all")
	}
}

func TestParsePackagesRefuses(t *testing.T) {
	good := "Package: aa\nVersion: 1\nArchitecture: all\nFilename: pool/a.deb\nSize: 3\nSHA256: " + strings.Repeat("ab", 32) + "\n"
	if _, err := ParsePackages([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"dotdot":     strings.Replace(good, "pool/a.deb", "../a.deb", 1),
		"absolute":   strings.Replace(good, "pool/a.deb", "/etc/passwd", 1),
		"unclean":    strings.Replace(good, "pool/a.deb", "pool//a.deb", 1),
		"size":       strings.Replace(good, "Size: 3", "Size: -1", 1),
		"sha":        strings.Replace(good, strings.Repeat("ab", 32), strings.Repeat("AB", 32), 1),
		"no sha":     strings.Replace(good, "SHA256", "SHA1", 1),
		"name":       strings.Replace(good, "Package: aa", "Package: A!", 1),
		"relation":   good + "Depends: bb (>= )\n",
		"arch list":  good + "Depends: bb [amd64]\n",
		"provides |": good + "Provides: bb | cc\n",
	} {
		if ps, err := ParsePackages([]byte(bad)); err == nil || ps != nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseRelease(t *testing.T) {
	text := readFixture(t, "repo/dists/stable/Release")
	r, err := ParseRelease(text)
	if err != nil {
		t.Fatal(err)
	}
	if r.Suite != "stable" || !r.AcquireByHash || r.ValidUntil.IsZero() || r.Date.IsZero() {
		t.Fatalf("release: %+v", r)
	}
	idx, fs, err := r.Index("main", "amd64")
	if err != nil || idx != "main/binary-amd64/Packages.gz" {
		t.Fatalf("index: %s %v", idx, err)
	}
	gzData := readFixture(t, "repo/dists/stable/"+idx)
	if int64(len(gzData)) != fs.Size || sum256(gzData) != fs.SHA256 {
		t.Fatal("the release's SHA256 entry does not describe the fixture's Packages.gz")
	}
	// Without a .gz the .xz is taken, then the plain file.
	delete(r.Files, "main/binary-amd64/Packages.gz")
	if idx, _, err := r.Index("main", "amd64"); err != nil || idx != "main/binary-amd64/Packages.xz" {
		t.Fatalf("index without .gz: %s %v", idx, err)
	}
	delete(r.Files, "main/binary-amd64/Packages.xz")
	if idx, _, err := r.Index("main", "amd64"); err != nil || idx != "main/binary-amd64/Packages" {
		t.Fatalf("index without .gz and .xz: %s %v", idx, err)
	}
	if _, _, err := r.Index("main", "riscv64"); !errors.Is(err, ErrMissing) {
		t.Fatalf("riscv64: %v", err)
	}
	if err := r.Check("stable", r.Date); err != nil {
		t.Fatal(err)
	}
	if err := r.Check("testing", r.Date); !errors.Is(err, ErrSuite) {
		t.Fatalf("other suite: %v", err)
	}
	if err := r.Check("stable", r.Date.Add(-MaxDateSkew)); err != nil {
		t.Errorf("Date MaxDateSkew ahead of the clock: %v", err)
	}
	if err := r.Check("stable", r.Date.Add(-MaxDateSkew-time.Second)); !errors.Is(err, ErrNotYetValid) {
		t.Errorf("Date more than MaxDateSkew ahead of the clock: %v, want ErrNotYetValid", err)
	}
	if err := r.Check("stable", r.ValidUntil.Add(time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("after Valid-Until: %v", err)
	}
	for name, bad := range map[string]string{
		"two paragraphs": string(text) + "\nA: b\n",
		"no sha256":      "Suite: s\n",
		"bad path":       "Suite: s\nSHA256:\n " + strings.Repeat("a", 64) + " 1 ../x\n",
		"bad date":       "Suite: s\nDate: yesterday\nSHA256:\n",
		"bad zone":       "Suite: s\nDate: Thu, 01 Jan 2026 00:00:00 CET\nSHA256:\n",
	} {
		if r, err := ParseRelease([]byte(bad)); err == nil || r != nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseDate(t *testing.T) {
	for in, want := range map[string]string{
		"Sat, 22 Nov 2036 09:45:43 +0000": "2036-11-22T09:45:43Z",
		"Thu, 01 Jan 2026 00:00:00 UTC":   "2026-01-01T00:00:00Z",
		"Mon, 5 Jan 2026 01:00:00 +0100":  "2026-01-05T00:00:00Z",
		"Mon,  5 Jan 2026 01:00:00 UTC":   "2026-01-05T01:00:00Z",
	} {
		got, err := ParseDate(in)
		if err != nil || got.Format(time.RFC3339) != want {
			t.Errorf("%q: got %v %v, want %s", in, got, err, want)
		}
	}
}

var versionPairs = [][2]string{
	{"1.0", "1.0"}, {"1.0", "1.1"}, {"1.0", "1.0-1"}, {"1.0~rc1", "1.0"}, {"1.0~~", "1.0~"},
	{"1:0.1", "2.0"}, {"2.0", "10.0"}, {"1.0a", "1.0"}, {"1.0+b1", "1.0"}, {"1.0-1", "1.0-1ubuntu1"},
	{"0:1.0", "1.0"}, {"1.00", "1.0"}, {"1.0.0", "1.0"}, {"2.30-1+deb12u1", "2.30-1"}, {"1.0-a", "1.0-+"},
	{"7.88.1-10+deb12u5", "7.88.1-10+deb12u12"}, {"1.2.3~bpo12+1", "1.2.3"}, {"a", "b"}, {"1.0-1", "1.0-01"},
}

// TestCompareVersionsDpkg checks the order against dpkg's own.
func TestCompareVersionsDpkg(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Fatal("dpkg is needed to cross-check the version order: apt-get install dpkg")
	}
	for _, p := range versionPairs {
		for _, q := range [][2]string{p, {p[1], p[0]}} {
			got := CompareVersions(q[0], q[1])
			want := 0
			for _, c := range []struct {
				op string
				v  int
			}{{"lt", -1}, {"gt", 1}} {
				if exec.Command("dpkg", "--compare-versions", q[0], c.op, q[1]).Run() == nil {
					want = c.v
				}
			}
			if got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, dpkg says %d", q[0], q[1], got, want)
			}
		}
	}
}

func TestRelations(t *testing.T) {
	g, err := ParseRelations("aa (>= 1.0), bb | cc:any (<< 2), dd (> 1)")
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != 3 || g[1][1].Arch != "any" || g[1][1].Op != "<<" || g[2][0].Op != ">=" {
		t.Fatalf("%+v", g)
	}
	if !g[0][0].Satisfies("1.0") || g[0][0].Satisfies("0.9") || !g[1][0].Satisfies("anything") {
		t.Fatal("Satisfies")
	}
}

// TestDecompressVariants: the fixture's Packages.gz and Packages.xz (made by
// apt-ftparchive's gzip and xz) decompress to its plain Packages, whichever
// of them a release leads Index to.
func TestDecompressVariants(t *testing.T) {
	plain := readFixture(t, "repo/dists/stable/main/binary-amd64/Packages")
	for _, n := range []string{"Packages", "Packages.gz", "Packages.xz"} {
		got, err := decompress(n, readFixture(t, "repo/dists/stable/main/binary-amd64/"+n))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: %d bytes, %v; want the %d bytes of Packages", n, len(got), err, len(plain))
		}
	}
	if _, err := decompress("Packages.xz", []byte("not xz")); !errors.Is(err, ErrControl) {
		t.Fatalf("damaged xz: %v", err)
	}
	if _, err := decompress("Packages.gz", []byte("not gzip")); !errors.Is(err, ErrControl) {
		t.Fatalf("damaged gzip: %v", err)
	}
}
