// Command mirror builds offline mirrors for air-gapped networks.
//
// This package is only the command line: flags, progress output and exit
// codes. Every decision lives in the mirror, bundle and verify packages.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/mirror-tool/mirror/mirror/fetch"
)

// Exit codes (the contract in README.md, "Exit codes everywhere", and
// scripts/cron/README.md).
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitRejected = 3
)

// version is set at build time with -ldflags "-X main.version=..."; left
// "dev", it is completed from what the go command recorded in the binary
// (buildVersion), so that a bundle's tool_version and the User-Agent name
// the build that made them.
var version = "dev"

func init() {
	if version == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			version = buildVersion(bi)
		}
	}
	fetch.Version = version
}

// buildVersion names a build from its build information: the module's
// version when it was built as a dependency or from a tagged module, else
// "dev+" and the first 12 digits of the commit the go command stamped
// (with "-dirty" for uncommitted changes), else "dev".
func buildVersion(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	v := "dev+" + rev[:min(12, len(rev))]
	if dirty {
		v += "-dirty"
	}
	return v
}

// commands is filled by the init functions of this package's files, one file
// per command, so that commands do not step on each other.
var commands []*cli.Command

// exitError carries an exit code and an optional hint to main.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError reports bad command-line use (exit 2).
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// withHint wraps err (exit 1) with a hint printed after the message.
func withHint(err error, hint string) error {
	return &exitError{code: exitFailed, err: err, hint: hint}
}

// errRejected marks a run that finished but rejected some packages (exit 3).
// The command has already printed what was rejected.
var errRejected = errors.New("some packages were rejected")

// rejectedError is errRejected with words for the case at hand: "1 package
// was rejected", "tools:x was rejected".
type rejectedError struct{ msg string }

func (e *rejectedError) Error() string        { return e.msg }
func (e *rejectedError) Is(target error) bool { return target == errRejected }

func newApp(stdout, stderr io.Writer) *cli.App {
	cmds := append([]*cli.Command(nil), commands...)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	setUsageErrors(cmds)
	return &cli.App{
		Name:                 "mirror",
		Usage:                "build signed offline mirrors for air-gapped networks",
		Version:              version,
		Commands:             cmds,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: false,
		// `mirror help [COMMAND]` as `mirror trust help [COMMAND]`.
		HideHelpCommand: false,
		// A word that is not a command reaches the app's Action.
		Action: unknownCommand,
		// Errors are turned into messages and exit codes in main only.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
	}
}

// unknownCommand is the Action of the app and of commands made only of
// subcommands: without arguments it shows the help, and a word that is not
// a command is a usage error that lists the commands (urfave/cli would say
// "No help topic for" it).
func unknownCommand(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.ShowAppHelp(c)
	}
	return unknownSubcommand("mirror", c.App.VisibleCommands(), c.Args().First())
}

// unknownSubcommand is the usage error for a word that is not one of cmds
// (of the command called path).
func unknownSubcommand(path string, cmds []*cli.Command, word string) error {
	var names []string
	for _, cmd := range cmds {
		names = append(names, cmd.Name)
	}
	return usageError("unknown command %q; the commands of %s are: %s", path+" "+word, path, strings.Join(names, ", "))
}

// onUsageError turns flag errors into exit code 2, with the flags written
// as they are typed (--max-age, not the Go flag package's -max-age) and,
// for a value that does not parse, what a good one looks like.
func onUsageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if m := flagUndefined.FindStringSubmatch(msg); m != nil {
		msg = "unknown flag " + dashed(m[1])
	} else if m := flagNeedsValue.FindStringSubmatch(msg); m != nil {
		msg = dashed(m[1]) + " needs a value"
	} else if m := flagInvalid.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("invalid value %q for %s: ", m[1], dashed(m[2]))
		switch lookupFlag(c, m[2]).(type) {
		case *cli.DurationFlag:
			msg += "give a duration such as 720h, 90m or 1h30m (units h, m, s: 30 days is 720h)"
		case *cli.IntFlag:
			msg += "give a whole number"
		default:
			msg += m[3]
		}
	}
	return &exitError{code: exitUsage, err: errors.New(msg)}
}

// dashed writes a flag's name as it is typed: -j, --jobs.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// The flag package's messages that onUsageError rewrites.
var (
	flagUndefined  = regexp.MustCompile(`^flag provided but not defined: -+(\S+)$`)
	flagNeedsValue = regexp.MustCompile(`^flag needs an argument: -+(\S+)$`)
	flagInvalid    = regexp.MustCompile(`^invalid value "(.*)" for flag -+([^:\s]+): (.*)$`)
)

// lookupFlag finds the flag called name (or one of its aliases) of the
// command c runs, or nil.
func lookupFlag(c *cli.Context, name string) cli.Flag {
	var flags []cli.Flag
	if c.Command != nil {
		flags = c.Command.Flags
	}
	for _, f := range append(flags, c.App.Flags...) {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// setUsageErrors makes every command and subcommand report flag errors as
// usage errors (urfave/cli does not pass the app's handler down). urfave/cli
// links its shared help command into command trees, so the walk remembers
// what it has seen rather than trusting the tree to be acyclic.
func setUsageErrors(cmds []*cli.Command) {
	seen := map[*cli.Command]bool{}
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			if seen[c] {
				continue
			}
			seen[c] = true
			if c.OnUsageError == nil {
				c.OnUsageError = onUsageError
			}
			walk(c.Subcommands)
		}
	}
	walk(cmds)
}

// run is main without os.Exit, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, args)
	if ie := interrupted(ctx); err != nil && ie != nil && !errors.As(err, &ie) {
		// A command without its own words for it: say what stopped it
		// rather than "context canceled".
		err = &exitError{code: exitFailed, err: ie}
	}
	help := helpCommand(app.Commands, args)
	if jsonLog(args) {
		return reportJSON(stdout, stderr, err, help)
	}
	return report(stderr, err, help)
}

// helpCommand is the command line that shows the help of the command args
// call, for the hint after a usage error: "mirror sync --help", "mirror
// trust check --help", or "mirror --help" when args name no command.
func helpCommand(cmds []*cli.Command, args []string) string {
	path := "mirror"
	for _, a := range args[min(len(args), 1):] {
		if strings.HasPrefix(a, "-") {
			continue
		}
		var found *cli.Command
		for _, c := range cmds {
			if c.HasName(a) && c.Name != "help" {
				found = c
			}
		}
		if found == nil {
			break
		}
		path += " " + found.Name
		cmds = found.Subcommands
	}
	return path + " --help"
}

// jsonLog reports whether args are a `mirror sync` with --log-format json:
// its errors are then JSON lines too, so that every line of a cron log
// parses, whatever stopped the run (flags, the config, the lock, a signal).
// It looks at the words as the flag parser does: the last --log-format wins.
func jsonLog(args []string) bool {
	if len(args) < 2 || args[1] != "sync" {
		return false
	}
	on := false
	for i := 2; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "log-format" {
			continue
		}
		if !hasVal && i+1 < len(args) {
			i++
			val = args[i]
		}
		on = val == "json"
	}
	return on
}

// explain returns the exit code for err and the hints to print after it.
func explain(err error) (code int, hint string) {
	if errors.Is(err, errRejected) {
		return exitRejected, ""
	}
	code = exitFailed
	var ee *exitError
	if errors.As(err, &ee) {
		code, hint = ee.code, ee.hint
	}
	var ce cli.ExitCoder
	if ee == nil && errors.As(err, &ce) {
		// Flag parsing and unknown commands come back as usage errors.
		code = exitUsage
	}
	return code, hint
}

// report prints err the one way this program prints errors and returns the
// exit code for it.
// help is the command line that shows the command's help.
func report(stderr io.Writer, err error, help string) int {
	if err == nil {
		return exitOK
	}
	code, hint := explain(err)
	// Several errors joined (errors.Join) get a line and a prefix each; a
	// line break inside one (a hostile file name) stays escaped, so that it
	// cannot start a line of its own.
	for _, line := range errorLines(err) {
		fmt.Fprintf(stderr, "mirror: %s\n", terminalSafe(line))
	}
	if hint != "" {
		fmt.Fprintf(stderr, "mirror: hint: %s\n", terminalSafe(hint))
	}
	if code == exitUsage {
		fmt.Fprintf(stderr, "mirror: hint: run '%s' for usage\n", help)
	}
	return code
}

// jsonLine is v as one line of JSON (for --log-format json and the
// events), written by writeJSON's rules.
func jsonLine(v any) []byte {
	b, _ := json.Marshal(v)
	return append(escapeUnsafe(b), '\n')
}

// writeJSON writes v as indented JSON to w, every rune that terminalSafe
// would escape written as a \u escape: a program reading it decodes the
// same value, and a terminal showing the raw text (cat, less, jq -c) is not
// steered by a bidirectional override or another invisible rune in a
// hostile name. Go's encoder escapes only control characters and U+2028/9.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(escapeUnsafe(b), '\n'))
	return err
}

// escapeUnsafe rewrites the unsafe runes of JSON text as \u escapes (a
// surrogate pair above U+FFFF). Outside strings JSON is ASCII, so only
// string contents change, and they decode to what they were.
func escapeUnsafe(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r < utf8.RuneSelf || !unsafeRune(r) {
			if out != nil {
				out = append(out, b[i:i+n]...)
			}
			i += n
			continue
		}
		if out == nil {
			out = append(make([]byte, 0, len(b)+16), b[:i]...)
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			out = fmt.Appendf(out, "\\u%04x\\u%04x", r1, r2)
		} else {
			out = fmt.Appendf(out, "\\u%04x", r)
		}
		i += n
	}
	if out == nil {
		return b
	}
	return out
}

// errorLines splits an errors.Join (recognised by its message: the
// messages of its errors, one per line), also under wrappers that add no
// words, into the messages it joins; any other error is one message,
// whatever it holds (report escapes a line break inside one).
func errorLines(err error) []string {
	if w, ok := err.(interface{ Unwrap() error }); ok && w.Unwrap() != nil && w.Unwrap().Error() == err.Error() {
		return errorLines(w.Unwrap()) // a wrapper that adds no words (a hint)
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []string{err.Error()}
	}
	var parts []string
	for _, e := range j.Unwrap() {
		if e != nil {
			parts = append(parts, e.Error())
		}
	}
	if strings.Join(parts, "\n") != err.Error() {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range j.Unwrap() {
		if e != nil {
			out = append(out, errorLines(e)...)
		}
	}
	return out
}

// reportJSON is report for `sync --log-format json`: the error is one
// {"event":"error"} line on stderr, and a run that printed no summary (it
// stopped before its end) gets one on stdout with a null result, so that
// the log ends with a summary line whatever happened.
func reportJSON(stdout, stderr io.Writer, err error, help string) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errRejected):
		return exitRejected // the summary is printed; it names the rejected packages
	}
	code, hint := explain(err)
	if code == exitUsage {
		hint = strings.TrimPrefix(hint+"; run '"+help+"' for usage", "; ")
	}
	ev := map[string]any{"event": "error", "message": err.Error(), "exit": code,
		"time": time.Now().UTC().Format(time.RFC3339)}
	if hint != "" {
		ev["hint"] = hint
	}
	stderr.Write(jsonLine(ev))
	stdout.Write(jsonLine(map[string]any{"event": "summary", "exit": code, "result": nil}))
	return code
}

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal cancels the run, which stops at its next check;
		// later ones are caught and ignored, so that it can stop cleanly.
		if s, ok := <-sigs; ok {
			cancel(&interruptedError{sig: s})
		}
	}()
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	signal.Stop(sigs)
	cancel(nil)
	os.Exit(code)
}

// interruptedError is the cause of the run's context's cancellation by
// SIGINT or SIGTERM.
type interruptedError struct{ sig os.Signal }

func (e *interruptedError) Error() string {
	name := "SIGINT"
	if e.sig == syscall.SIGTERM {
		name = "SIGTERM"
	}
	return "interrupted (" + name + ")"
}

// interrupted returns the signal that cancelled ctx, or nil.
func interrupted(ctx context.Context) *interruptedError {
	var ie *interruptedError
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &ie) {
		return ie
	}
	return nil
}

// terminalSafe writes the characters of s that a terminal could act on or
// hide (what unicode.IsPrint refuses: control and format characters, such
// as bidirectional overrides, and line breaks, tab aside; bytes that are
// not UTF-8) as Go escapes: file names from a medium, upstream names and
// reasons reach error messages and logs, and an escape sequence in one
// could rewrite what the operator sees (a refusal shown as a success).
func terminalSafe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			if b.Len() == 0 {
				b.WriteString(s[:i])
			}
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unsafeRune(r):
			if b.Len() == 0 {
				b.WriteString(s[:i])
			}
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		case b.Len() > 0:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	if b.Len() == 0 {
		return s
	}
	return b.String()
}

// unsafeRune: what safe (inspect) would quote, tab aside. A line break is
// unsafe too: everything terminalSafe writes goes inside one line, and a
// line break from a hostile name would start a line that reads as the
// tool's.
func unsafeRune(r rune) bool {
	return r != '\t' && !unicode.IsPrint(r)
}
