package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cheggaaa/pb/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/mirror"
)

// The `verify` and `inspect` commands: check or show a bundle without
// importing it.

func init() {
	commands = append(commands, &cli.Command{
		Name:      "verify",
		Usage:     "check a bundle completely against the operator key; writes nothing",
		ArgsUsage: "BUNDLE...",
		Description: "BUNDLE is NAME.tar.zst, or all the parts of a split bundle (NAME.tar.zst alone also finds\n" +
			"NAME.tar.zst.part-NNN). Checks the operator signature over the manifest first, then every\n" +
			"member, size and hash, the part headers, and NAME.tar.zst.minisig when it lies beside.\n" +
			"Prints one line starting with OK, or fails (exit 1) naming what is wrong.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "pub", Usage: "the operator's public key (operator.pub), pinned out of band"},
			&cli.BoolFlag{Name: "allow-expired", Usage: "report an expired bundle as OK (import still refuses it)"},
		},
		Action: verifyAction,
	}, &cli.Command{
		Name:      "inspect",
		Usage:     "show what a bundle's manifest says, WITHOUT checking its signature",
		ArgsUsage: "BUNDLE...",
		Description: "BUNDLE is NAME.tar.zst, or all the parts of a split bundle. Prints what the manifest says:\n" +
			"sequence and base, id, creation and expiry, the signer it names, the tool, the trust file,\n" +
			"sources, packages and the publish tree. Nothing is verified (mirror verify --pub does that)\n" +
			"and nothing is written.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the manifest as JSON (for scripts)"},
		},
		Action: inspectAction,
	})
}

// bundleFiles resolves the command's arguments to the files of one bundle.
// Boolean flags given after the bundle (`mirror inspect BUNDLE --json`, as
// the command line contract writes it) are taken as flags too.
func bundleFiles(c *cli.Context, cmd string, late map[string]*bool) ([]string, error) {
	var args []string
	for _, a := range c.Args().Slice() {
		if p, ok := late[strings.TrimLeft(a, "-")]; ok && strings.HasPrefix(a, "-") {
			*p = true
			continue
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			return nil, usageError("%s: unknown flag %s", cmd, a)
		}
		args = append(args, a)
	}
	if len(args) == 0 {
		return nil, usageError("%s: no bundle given; name NAME.tar.zst (or all parts of a split bundle)", cmd)
	}
	if len(args) > 1 {
		return args, nil
	}
	files, err := bundle.Files(args[0])
	if err != nil {
		return nil, withHint(err, "name an existing NAME.tar.zst, or its parts NAME.tar.zst.part-NNN")
	}
	return files, nil
}

// errBundleExpired fails verify on an expired bundle.
var errBundleExpired = errors.New("bundle has expired")

func verifyAction(c *cli.Context) error {
	if c.String("pub") == "" {
		return usageError("verify: --pub is required (the operator.pub written by `mirror keygen`)")
	}
	allowExpired := c.Bool("allow-expired")
	files, err := bundleFiles(c, "verify", map[string]*bool{"allow-expired": &allowExpired})
	if err != nil {
		return err
	}
	pub, err := operator.LoadPublic(c.String("pub"))
	if err != nil {
		return withHint(fmt.Errorf("operator key: %w", err), "pass the operator.pub written by `mirror keygen`")
	}
	name := displayName(files)
	r, err := bundle.Open(c.Context, files, pub, bundle.Limits{})
	if err != nil {
		return withHint(fmt.Errorf("bundle %s: %w", name, err), bundleHint(err))
	}
	defer r.Close()
	bar := newVerifyBar(c.App.ErrWriter, r.Manifest().TotalBlobSize())
	defer bar.finish()
	var blobs int
	for {
		info, br, err := r.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			_, err = io.Copy(io.Discard, br)
			bar.add(info.Size)
		}
		if err != nil {
			return withHint(fmt.Errorf("bundle %s: %w", name, err), bundleHint(err))
		}
		blobs++
	}
	bar.finish()
	m := r.Manifest()
	var size int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			size += fi.Size()
		}
	}
	if err := mirror.CheckPublishable(m); err != nil {
		return withHint(fmt.Errorf("bundle %s: %w", name, err),
			"the signature and contents are intact, but import refuses a publish tree it cannot serve; a sync of this version never writes one: sync again with it")
	}
	if now := time.Now(); !now.Before(m.Expires) && !allowExpired {
		return withHint(fmt.Errorf("bundle %s: %w on %s (sequence %d)", name, errBundleExpired, m.Expires.UTC().Format(time.RFC3339), m.Sequence),
			"the signature and contents are intact, but import refuses an expired bundle; make a fresh one with `mirror sync --since receipt.json` (a plain run with nothing new makes none), or pass --allow-expired to check this one anyway")
	}
	how := "file signature checked"
	if len(files) > 1 || isSplit(files) {
		how = fmt.Sprintf("%d signed parts and the file signature checked", len(files))
	}
	sigPath, err := bundle.CheckFileSignature(c.Context, files, pub, m)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(c.App.ErrWriter, "mirror: warning: %s is missing, so the whole-file signature was not checked; the manifest signature, the layout and every hash were\n", terminalSafe(sigPath))
		how = "no .minisig"
		if len(files) > 1 || isSplit(files) {
			how = fmt.Sprintf("%d signed parts checked, no .minisig", len(files))
		}
	case err != nil:
		return withHint(fmt.Errorf("bundle %s: %w", name, err), "the detached signature does not match the bundle file: copy both again; do not import it")
	}
	fmt.Fprintf(c.App.Writer, "OK %s: sequence %d (%s), id %s, signed by %s, %d blobs (%s), %s on disk, %s\n",
		name, m.Sequence, kind(m), m.ID, pub.ID, blobs, fmtBytes(m.TotalBlobSize()), fmtBytes(size), how)
	return nil
}

func isSplit(files []string) bool {
	return len(files) == 1 && strings.Contains(filepath.Base(files[0]), ".part-")
}

func kind(m *bundle.Manifest) string {
	if m.IsDelta() {
		return fmt.Sprintf("delta from %d", m.BaseSequence)
	}
	return "full"
}

// displayName names a bundle in messages: the file, or NAME.tar.zst for
// its parts.
func displayName(files []string) string {
	f := files[0]
	if i := strings.LastIndex(f, ".part-"); i >= 0 && (len(files) > 1 || isSplit(files)) {
		f = f[:i]
	}
	return terminalSafe(f)
}

// bundleHint says what to do about a bundle error.
func bundleHint(err error) string {
	var pe *bundle.PartError
	switch {
	case errors.As(err, &pe) && pe.Path == "":
		return fmt.Sprintf("part %d is missing: copy all parts of the bundle and name them all", pe.Index)
	case errors.As(err, &pe):
		return fmt.Sprintf("copy part %d (%s) again from the source medium", pe.Index, pe.Path)
	case errors.Is(err, bundle.ErrSignature):
		return "a bundle is good only when signed by the pinned operator key: check --pub and where the bundle came from"
	case errors.Is(err, bundle.ErrFormat):
		return "this bundle was made by a newer mirror: upgrade mirror on this side"
	case errors.Is(err, bundle.ErrTruncated):
		return "the bundle is incomplete: copy it again (all parts, if split)"
	case errors.Is(err, bundle.ErrLimit):
		return "the bundle is larger than this reader's limits allow; it may be hostile"
	case errors.Is(err, os.ErrNotExist):
		return "check the bundle path"
	}
	return "the bundle is damaged or was tampered with: copy it again from the source, and do not import it"
}

func inspectAction(c *cli.Context) error {
	asJSON := c.Bool("json")
	files, err := bundleFiles(c, "inspect", map[string]*bool{"json": &asJSON})
	if err != nil {
		return err
	}
	name := displayName(files)
	m, err := bundle.Inspect(c.Context, files, bundle.Limits{})
	if err != nil {
		return withHint(fmt.Errorf("bundle %s: %w", name, err), bundleHint(err))
	}
	out := c.App.Writer
	// For people and for scripts alike (stdout keeps the JSON alone).
	fmt.Fprintf(c.App.ErrWriter, "mirror: %s: signature not checked; use `mirror verify --pub operator.pub` before trusting any of this\n", name)
	if asJSON {
		return writeJSON(out, m)
	}
	now := time.Now()
	exp := "expires in " + roundDuration(m.Expires.Sub(now))
	if !now.Before(m.Expires) {
		exp = "EXPIRED " + roundDuration(now.Sub(m.Expires)) + " ago"
	}
	pr := func(label, format string, args ...any) {
		fmt.Fprintf(out, "%-10s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	pr("bundle", "%s", safe(name))
	pr("format", "%s", m.Format)
	pr("id", "%s", m.ID)
	pr("sequence", "%d (%s)", m.Sequence, kind(m))
	pr("created", "%s", m.Created.UTC().Format(time.RFC3339))
	pr("expires", "%s (%s)", m.Expires.UTC().Format(time.RFC3339), exp)
	pr("signer", "operator key %s", m.OperatorKeyID)
	pr("tool", "mirror %s", safe(m.ToolVersion))
	if m.Trust.File == "" {
		pr("trust", "none recorded")
	} else {
		pr("trust", "sha256 %s (%d bytes)", m.Trust.SHA256, len(m.Trust.File))
	}
	pr("sources", "%d", len(m.Sources))
	for _, s := range m.Sources {
		fmt.Fprintf(out, "  %s (%s) %s\n", safe(s.Name), safe(s.Type), safe(s.URL))
	}
	var pkgBytes, treeBytes int64
	for _, p := range m.Packages {
		pkgBytes += p.Size
	}
	for _, e := range m.Tree {
		treeBytes += e.Size
	}
	pr("packages", "%d (%s)", len(m.Packages), fmtBytes(pkgBytes))
	for _, p := range m.Packages {
		keys := make([]string, len(p.Keys))
		for i, k := range p.Keys {
			keys[i] = safe(k)
		}
		fmt.Fprintf(out, "  %s:%s %s  %s  keys: %s\n", safe(p.Source), safe(p.Name), safe(p.Version), fmtBytes(p.Size), strings.Join(keys, ", "))
	}
	pr("tree", "%d files (%s)", len(m.Tree), fmtBytes(treeBytes))
	pr("blobs", "%d carried (%s)", len(m.Blobs), fmtBytes(m.TotalBlobSize()))
	pr("rejected", "%d", len(m.Rejected))
	for _, r := range m.Rejected {
		fmt.Fprintf(out, "  %s:%s: %s\n", safe(r.Source), safe(r.Name), safe(r.Reason))
	}
	return nil
}

// safe quotes text from a bundle that could otherwise play tricks on a
// terminal (control characters, invisible runes).
func safe(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func roundDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	}
	return d.Round(time.Second).String()
}

// verifyBar shows verify's progress on a terminal, and nothing otherwise.
type verifyBar struct{ bar *pb.ProgressBar }

func newVerifyBar(w io.Writer, total int64) *verifyBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &verifyBar{}
	}
	bar := pb.New64(total).Set(pb.Bytes, true).SetWriter(w).SetRefreshRate(200 * time.Millisecond)
	bar.Set("prefix", "verify ")
	return &verifyBar{bar: bar.Start()}
}

func (v *verifyBar) add(n int64) {
	if v.bar != nil {
		v.bar.Add64(n)
	}
}

func (v *verifyBar) finish() {
	if v.bar != nil {
		v.bar.Finish()
		v.bar = nil
	}
}
