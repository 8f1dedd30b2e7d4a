package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cheggaaa/pb/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/mirror"
	"github.com/mirror-tool/mirror/mirror/repo"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:      "import",
		Usage:     "check bundles against the pinned operator key and publish them in a repository",
		ArgsUsage: "BUNDLE...",
		Description: "Each bundle (NAME.tar.zst, or all the parts of a split bundle) is checked against the\n" +
			"pinned key, refused when it rolls back, replays, is expired or older than --max-age, or is\n" +
			"a delta whose base is missing, then published by one atomic switch. Several bundles are\n" +
			"imported in sequence order. A refused or failed import changes nothing that is served.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "pub", Usage: "the operator's public key (operator.pub), pinned out of band"},
			&cli.StringFlag{Name: "repo", Usage: "the repository folder"},
			&cli.DurationFlag{Name: "max-age", Usage: "refuse bundles created longer ago than this (e.g. 720h); 0: only the bundle's expiry counts"},
			&cli.BoolFlag{Name: "recheck", Usage: "re-verify every package's upstream signatures with the trust file the bundle carries"},
			&cli.IntFlag{Name: "keep", Value: repo.DefaultKeep, Usage: "generations to keep (the current one included)"},
		},
		Action: importAction,
	})
}

func importAction(c *cli.Context) error {
	if c.String("pub") == "" {
		return usageError("import: --pub is required")
	}
	if c.String("repo") == "" {
		return usageError("import: --repo is required")
	}
	if len(mirror.GroupBundles(c.Args().Slice())) == 0 {
		// Only detached signatures (or nothing) were given: say which
		// were skipped, and what to give instead.
		var skipped []string
		for _, a := range c.Args().Slice() {
			skipped = append(skipped, fmt.Sprintf("skipped %s (a detached signature); give %s",
				terminalSafe(a), terminalSafe(strings.TrimSuffix(a, ".minisig"))))
		}
		if len(skipped) > 0 {
			return usageError("import: no bundle given: %s", strings.Join(skipped, "; "))
		}
		return usageError("import: no bundle given; name the NAME.tar.zst file(s) (or all parts of a split bundle)")
	}
	if c.Int("keep") < 1 {
		return usageError("import: --keep %d: keep at least 1 generation", c.Int("keep"))
	}
	if c.Duration("max-age") < 0 {
		return usageError("import: --max-age must not be negative")
	}
	pub, err := operator.LoadPublic(c.String("pub"))
	if err != nil {
		return withHint(fmt.Errorf("operator key: %w", err), "pass the operator.pub written by `mirror keygen`")
	}
	opts := mirror.ImportOptions{
		Repo:    c.String("repo"),
		Pub:     pub,
		MaxAge:  c.Duration("max-age"),
		Recheck: c.Bool("recheck"),
		Keep:    c.Int("keep"),
	}
	opts.Progress = newImportProgress(c.App.ErrWriter)
	results, err := mirror.Import(c.Context, opts, c.Args().Slice())
	out := c.App.Writer
	for _, r := range results {
		switch r.Result {
		case repo.ResultAlready:
			fmt.Fprintf(out, "%s: sequence %d (bundle %s) was imported before: nothing to do\n", terminalSafe(r.Bundle), r.Sequence, r.BundleID)
		default:
			fmt.Fprintf(out, "%s: imported sequence %d (bundle %s, signed by %s): %s, %s, %s (%s); now served\n",
				terminalSafe(r.Bundle), r.Sequence, r.BundleID, r.Signer, plural(r.Packages, "package"), plural(r.Files, "file"), plural(r.NewBlobs, "new blob"), fmtBytes(r.Bytes))
		}
		if r.Withdrawn > 0 {
			more := ""
			if r.Withdrawn > len(r.WithdrawnFirst) {
				more = ", ..."
			}
			fmt.Fprintf(out, "%s: %s of the generation before no longer served (the outside refused or dropped them: %s%s)\n",
				terminalSafe(r.Bundle), plural(r.Withdrawn, "file"), terminalSafe(strings.Join(r.WithdrawnFirst, ", ")), more)
		}
		if r.Warning != "" {
			fmt.Fprintf(c.App.ErrWriter, "mirror: warning: %s\n", terminalSafe(r.Warning))
		}
	}
	if err == nil {
		return nil
	}
	if ie := interrupted(c.Context); ie != nil {
		// A bundle is served only once its switch is done, and then it
		// is in results (printed above as "now served"), even when the
		// cancellation came during the collection that follows.
		for _, r := range results {
			if r.Result == repo.ResultImported {
				return fmt.Errorf("%w; the bundles listed as now served were imported, the others were not", ie)
			}
		}
		return fmt.Errorf("%w; nothing served changed", ie)
	}
	return withHint(err, importHint(err, opts.Repo))
}

func importHint(err error, dir string) string {
	switch {
	case errors.Is(err, repo.ErrNotRepository):
		return "check --repo"
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Sprintf("free space on the disk of %s and run the import again; nothing served changed", dir)
	case errors.Is(err, bundle.ErrSignature):
		return "a bundle is accepted only when signed by the pinned operator key: check --pub and where the bundle came from (after an operator key rotation, bundles of the old key are no longer imported: remove them from the import folder; docs/keys.md)"
	case errors.Is(err, mirror.ErrMissingBase):
		return "import the missing sequences first (several bundles may be given at once); a lost one is replaced by `mirror sync --since " + filepath.Join(dir, repo.ReceiptFile) + "` outside"
	case errors.Is(err, mirror.ErrRollback):
		return "bundles must be newer than the last one imported (see `mirror status --repo " + dir + "`); remove superseded files from the import folder"
	}
	return "nothing served changed; the import log is shown by `mirror status --repo " + dir + "`"
}

// importProgress draws a bar on a terminal and stays quiet otherwise (cron).
type importProgress struct {
	w   io.Writer
	tty bool
	bar *pb.ProgressBar
}

func newImportProgress(w io.Writer) *importProgress {
	f, ok := w.(*os.File)
	return &importProgress{w: w, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (p *importProgress) Start(name string, seq uint64, blobs int, bytes int64) {
	if !p.tty {
		return
	}
	p.bar = pb.New64(bytes).Set(pb.Bytes, true).SetWriter(p.w).SetRefreshRate(200 * time.Millisecond)
	p.bar.Set("prefix", fmt.Sprintf("sequence %d ", seq))
	p.bar.Start()
}

func (p *importProgress) Blob(n int64) {
	if p.bar != nil {
		p.bar.Add64(n)
	}
}

func (p *importProgress) Done(mirror.ImportResult) {
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}
