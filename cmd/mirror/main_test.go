package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// Every command and subcommand reports a flag it does not know as a usage
// error: exit 2, a message, and the hint.
func TestUnknownFlagIsUsageError(t *testing.T) {
	var names [][]string
	for _, c := range commands {
		if len(c.Subcommands) == 0 {
			names = append(names, []string{c.Name})
		}
		for _, s := range c.Subcommands {
			names = append(names, []string{c.Name, s.Name})
		}
	}
	if len(names) < 8 {
		t.Fatalf("only %d commands registered: %v", len(names), names)
	}
	for _, n := range names {
		var stdout, stderr bytes.Buffer
		args := append(append([]string{"mirror"}, n...), "--no-such-flag")
		code := run(context.Background(), args, &stdout, &stderr)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr: %s", n, code, exitUsage, stderr.String())
		}
		if !strings.Contains(stderr.String(), "no-such-flag") || !strings.Contains(stderr.String(), "mirror: hint:") {
			t.Errorf("%v: stderr does not name the flag and give a hint: %q", n, stderr.String())
		}
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"frobnicate"}, []string{`unknown command "mirror frobnicate"`, "sync", "import", "trust"}},
		{[]string{"trust", "frob"}, []string{`unknown command "mirror trust frob"`, "check"}},
	} {
		code, out, errs := runCLI(c.args...)
		if code != exitUsage || out != "" {
			t.Errorf("%v: exit %d, want %d\nstdout %q\nstderr %q", c.args, code, exitUsage, out, errs)
		}
		for _, w := range c.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%v: stderr lacks %q: %q", c.args, w, errs)
			}
		}
		if strings.Contains(errs, "No help topic") {
			t.Errorf("%v: %q", c.args, errs)
		}
	}
}

// TestHelpAndVersion: `mirror help [COMMAND]` works as `mirror trust help
// [COMMAND]` does, and `mirror version` as `mirror --version`.
func TestHelpAndVersion(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "COMMANDS:"},
		{[]string{"help"}, "COMMANDS:"},
		{[]string{"--help"}, "COMMANDS:"},
		{[]string{"help", "sync"}, "mirror sync - download"},
		{[]string{"trust", "help", "check"}, "mirror trust check - check"},
		{[]string{"trust"}, "check"},
		{[]string{"version"}, "mirror version " + version},
		{[]string{"--version"}, "mirror version " + version},
	} {
		code, out, errs := runCLI(c.args...)
		if code != exitOK || !strings.Contains(out, c.want) || errs != "" {
			t.Errorf("%v: exit %d, want 0 and %q on stdout\nstdout %q\nstderr %q", c.args, code, c.want, out, errs)
		}
	}
}

// TestTerminalSafe: what a terminal would act on is escaped, line breaks
// included (what terminalSafe writes goes inside one line); the rest, tabs
// included, is left as it is.
func TestTerminalSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain name.tar.zst":              "plain name.tar.zst",
		"two\nlines\tand a tab, café, 日本": `two\nlines` + "\tand a tab, café, 日本",
		"\x1b[2K\rfake":                   `\x1b[2K\rfake`,
		"a\x00b\x7fc\u009bd":              `a\x00b\x7fc\u009bd`,
		"right\u202eto left\u2066":        `right\u202eto left\u2066`,
		"bad \xff\xfe utf-8":              `bad \xff\xfe utf-8`,
	} {
		if got := terminalSafe(in); got != want {
			t.Errorf("terminalSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNoEscapesFromFileNames: a bundle file name with terminal escapes (a
// medium's file names are not the operator's) reaches neither the terminal
// nor `mirror status` raw, from import or from verify.
func TestNoEscapesFromFileNames(t *testing.T) {
	base := t.TempDir()
	pub := filepath.Join(base, "operator.pub")
	if err := os.WriteFile(pub, bndKey(t, 7).Public().File(), 0o644); err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(t.TempDir(), "\x1b[2K\r\x1b[32mmirror: imported sequence 99; now served\x1b[0m\x1b[8m.tar.zst")
	if err := os.WriteFile(evil, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(base, "repo")
	for _, args := range [][]string{
		{"import", "--pub", pub, "--repo", repoDir, evil},
		{"status", "--repo", repoDir},
		{"verify", "--pub", pub, evil},
	} {
		code, out, errs := bndRun(args...)
		if strings.Contains(out+errs, "\x1b") || strings.Contains(out+errs, "\r") {
			t.Errorf("mirror %s (exit %d) printed an escape:\nstdout %q\nstderr %q", args[0], code, out, errs)
		}
		if args[0] != "status" && (code == exitOK || !strings.Contains(errs, `\x1b[2K`)) {
			t.Errorf("mirror %s: exit %d, stderr %q: want a failure naming the file with its escapes shown", args[0], code, errs)
		}
	}
}

// TestHelpTexts: every command has a description, its help speaks of its
// flags (serve's of --repo, not of a DIR it has no flag for), no flag shows
// a "(default: 0)" beside its real default, and the hint after a usage
// error names the help of the command that was called.
func TestHelpTexts(t *testing.T) {
	for _, c := range commands {
		if c.Name != "version" && c.Description == "" && len(c.Subcommands) == 0 {
			t.Errorf("mirror %s has no DESCRIPTION", c.Name)
		}
	}
	_, out, _ := runCLI("serve", "--help")
	if !strings.Contains(out, "--repo DIR") || strings.Contains(out, "Serves DIR/current") {
		t.Errorf("serve --help:\n%s", out)
	}
	_, out, _ = runCLI("sync", "--help")
	if !strings.Contains(out, "min(8, 4*CPUs)") || strings.Contains(out, "(default: 0)") {
		t.Errorf("sync --help, --jobs:\n%s", out)
	}
	for _, c := range []struct {
		args []string
		hint string
	}{
		{[]string{"sync", "--jobs", "0"}, "mirror sync --help"},
		{[]string{"sync", "--config", "x", "--frobnicate"}, "mirror sync --help"},
		{[]string{"trust", "check", "--nope"}, "mirror trust check --help"},
		{[]string{"import", "--repo", "r"}, "mirror import --help"},
		{[]string{"frobnicate"}, "mirror --help"},
	} {
		code, _, errs := runCLI(c.args...)
		if want := "mirror: hint: run '" + c.hint + "' for usage\n"; code != exitUsage || !strings.Contains(errs, want) {
			t.Errorf("%v: exit %d, want 2 and %q:\n%s", c.args, code, want, errs)
		}
	}
}

// TestJoinedErrorsPrefixed: when a command fails for several reasons (two
// bundles refused), each reason is a line of its own starting "mirror: ".
func TestJoinedErrorsPrefixed(t *testing.T) {
	base := t.TempDir()
	pub := filepath.Join(base, "operator.pub")
	if err := os.WriteFile(pub, bndKey(t, 7).Public().File(), 0o644); err != nil {
		t.Fatal(err)
	}
	var bundles []string
	for _, n := range []string{"a.tar.zst", "b.tar.zst"} {
		p := filepath.Join(base, n)
		os.WriteFile(p, []byte("junk"), 0o644)
		bundles = append(bundles, p)
	}
	code, _, errs := runCLI(append([]string{"import", "--pub", pub, "--repo", filepath.Join(base, "repo")}, bundles...)...)
	if code != exitFailed || strings.Count(errs, "refused") != 2 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	for _, l := range strings.Split(strings.TrimSuffix(errs, "\n"), "\n") {
		if !strings.HasPrefix(l, "mirror: ") {
			t.Errorf("a line without the prefix: %q\n%s", l, errs)
		}
	}
}

// TestJoinedErrorLineBreak: a line break inside one of several joined
// errors (a hostile bundle file name) is escaped, not a line of its own
// that could read as the tool's.
func TestJoinedErrorLineBreak(t *testing.T) {
	var b strings.Builder
	report(&b, errors.Join(errors.New("refused x.tar.zst\nmirror: imported sequence 9"), errors.New("refused y.tar.zst")), "mirror import --help")
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "mirror: refused x.tar.zst") || !strings.HasPrefix(lines[1], "mirror: refused y.tar.zst") {
		t.Fatalf("report of two joined errors, one with a line break:\n%s", b.String())
	}
}

// TestFlagErrors: flag errors write flags as they are typed (--jobs, -j,
// not the flag package's -jobs), and a value that does not parse says what
// a good one looks like.
func TestFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "--max-age", "30d"}, `mirror: invalid value "30d" for --max-age: give a duration such as 720h`},
		{[]string{"sync", "--jobs", "many"}, `mirror: invalid value "many" for --jobs: give a whole number`},
		{[]string{"sync", "-j", "many"}, `mirror: invalid value "many" for -j: give a whole number`},
		{[]string{"sync", "--frobnicate"}, "mirror: unknown flag --frobnicate\n"},
		{[]string{"keygen", "--frobnicate"}, "mirror: unknown flag --frobnicate\n"},
		{[]string{"trust", "check", "--frobnicate"}, "mirror: unknown flag --frobnicate\n"},
		{[]string{"--frobnicate"}, "mirror: unknown flag --frobnicate\n"},
		{[]string{"serve", "--listen"}, "mirror: --listen needs a value\n"},
	} {
		code, _, errs := runCLI(c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, want 2 and %q:\n%s", c.args, code, c.want, errs)
		}
	}
}

// TestRepoNoSuchFolder: status and serve with a --repo that does not exist
// say so, not "no generation imported yet"; an empty folder is still a
// repository with nothing imported.
func TestRepoNoSuchFolder(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nonexistent")
	for _, args := range [][]string{{"status", "--repo", missing}, {"serve", "--repo", missing, "--listen", "127.0.0.1:0"}} {
		code, out, errs := runCLI(args...)
		if code != exitFailed || !strings.Contains(errs, "mirror: repository "+missing+": no such folder\n") || strings.Contains(out+errs, "imported") {
			t.Errorf("%v: exit %d\n%s\n%s", args, code, out, errs)
		}
	}
	code, _, errs := runCLI("status", "--repo", t.TempDir())
	if code != exitFailed || !strings.Contains(errs, "import a bundle first") {
		t.Errorf("status of an empty folder: exit %d\n%s", code, errs)
	}
}

// TestBuildVersion: without -ldflags the version names the commit the go
// command stamped, or the module's version, so bundles and the User-Agent
// tell which build made them.
func TestBuildVersion(t *testing.T) {
	rev := []debug.BuildSetting{{Key: "vcs.revision", Value: "a7eda2c0123456789abcdef"}}
	for _, c := range []struct {
		bi   debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: rev}, "dev+a7eda2c01234"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: append(rev, debug.BuildSetting{Key: "vcs.modified", Value: "true"})}, "dev+a7eda2c01234-dirty"},
		{debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Settings: rev}, "v1.2.0"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
	} {
		if got := buildVersion(&c.bi); got != c.want {
			t.Errorf("buildVersion(%+v) = %q, want %q", c.bi, got, c.want)
		}
	}
}

// TestJSONEscapesUnsafeRunes: JSON output writes a bidirectional override,
// a zero-width space and an unpaired rune above U+FFFF that is not
// printable as \u escapes, so the raw text on a terminal shows them, while
// a program decoding it gets the same strings back.
func TestJSONEscapesUnsafeRunes(t *testing.T) {
	v := map[string]string{"package": "tools:evil\u202egz.exe", "reason": "a\u200bb", "tag": "x\U000E0001y", "plain": "héllo wörld"}
	line := jsonLine(v)
	var b strings.Builder
	if err := writeJSON(&b, v); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(line), b.String()} {
		if strings.ContainsAny(out, "\u202e\u200b\U000E0001") || !strings.Contains(out, `\u202e`) || !strings.Contains(out, `\udb40\udc01`) || !strings.Contains(out, "héllo wörld") {
			t.Errorf("raw JSON %q: want the unsafe runes escaped and the printable ones as they are", out)
		}
		var back map[string]string
		if err := json.Unmarshal([]byte(out), &back); err != nil || !maps.Equal(back, v) {
			t.Errorf("decoded %q, %v; want %q", back, err, v)
		}
	}
}

// TestNoLinesFromFileNames: a bundle file name holding a line break (a
// signed bundle copied to a medium under such a name) is written escaped
// in the import's own lines, so it cannot print a line that reads as the
// tool's ("mirror: refused ...").
func TestNoLinesFromFileNames(t *testing.T) {
	f := newImpFixture(t)
	data, err := os.ReadFile(f.b1[0])
	if err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(t.TempDir(), "x\nmirror: refused sequence 1: bad signature; nothing imported\n.tar.zst")
	if err := os.WriteFile(evil, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("import", "--pub", f.pub, "--repo", t.TempDir(), evil)
	if code != exitOK || !strings.Contains(out, `x\nmirror: refused`) {
		t.Fatalf("import of a good bundle under a name with line breaks: exit %d\n%s%s", code, out, errs)
	}
	for _, line := range strings.Split(out+errs, "\n") {
		if strings.HasPrefix(line, "mirror: refused") {
			t.Fatalf("a file name printed a line of its own:\nstdout %q\nstderr %q", out, errs)
		}
	}
}
