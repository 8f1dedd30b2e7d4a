package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/mirror"
	"github.com/mirror-tool/mirror/mirror/fetch"
	"github.com/mirror-tool/mirror/mirror/lock"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:      "sync",
		Usage:     "download, verify and bundle the configured package set",
		UsageText: "mirror sync --config mirror.toml [--full] [--dry-run] [--jobs N] [--since RECEIPT] [--log-format text|json]",
		Description: `Exit codes: 0 done (a bundle was written, or nothing was new);
1 failed (nothing recorded; the next run resumes from the cache);
2 usage; 3 done, but some packages were rejected (not bundled).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "mirror.toml", Usage: "the configuration `FILE`"},
			&cli.BoolFlag{Name: "full", Usage: "make a complete bundle instead of a delta"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the plan; fetch only signatures and checksum lists, no package"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "`N` parallel downloads", DefaultText: "jobs in the config, else min(8, 4*CPUs)"},
			&cli.StringFlag{Name: "since", Usage: "build the delta that the inside is missing, from the `RECEIPT` that mirror import wrote"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "progress, summary and errors as text or json (json: one object per line, a summary line last on stdout)"},
			&cli.StringSliceFlag{Name: "accept-rollback", Usage: "let the `SOURCE:PATH` package (a glob; repeatable; SOURCE:dists/SUITE for an apt suite) go back to an older signed release in this run, when its upstream really withdrew the newer one"},
		},
		Action: syncAction,
	})
}

func syncAction(c *cli.Context) error {
	heapFloor()
	if c.NArg() > 0 {
		return usageError("sync takes no arguments, got %q", c.Args().First())
	}
	format := c.String("log-format")
	if format != "text" && format != "json" {
		return usageError("--log-format must be text or json, got %q", format)
	}
	if c.IsSet("jobs") && (c.Int("jobs") < 1 || c.Int("jobs") > mirror.MaxJobs) {
		return usageError("--jobs must be 1 to %d, got %d", mirror.MaxJobs, c.Int("jobs"))
	}
	if c.String("since") != "" && c.Bool("full") {
		return usageError("--since and --full exclude each other")
	}
	for _, p := range c.StringSlice("accept-rollback") {
		if _, err := path.Match(p, ""); err != nil || !strings.Contains(p, ":") {
			return usageError("--accept-rollback takes SOURCE:PATH (a glob), got %q", p)
		}
	}
	cfg, err := mirror.LoadConfig(c.String("config"))
	if err != nil {
		return withHint(err, "fix the configuration; docs/config.md describes every field")
	}
	stderr := c.App.ErrWriter
	prog := newSyncProgress(stderr, format)
	var ask func() ([]byte, error)
	if haveTerminal() {
		// Without one (cron), sync reads only the passphrase file and
		// variables, and stops at its start when they give none.
		ask = func() ([]byte, error) {
			return operatorPassphrase(c.Context, cfg.Operator.PassphraseFile, filepath.Base(cfg.Operator.Key), false)
		}
	}
	res, err := mirror.Sync(c.Context, cfg, mirror.SyncOptions{
		Full: c.Bool("full"), DryRun: c.Bool("dry-run"), Jobs: c.Int("jobs"), Since: c.String("since"),
		AcceptRollback: c.StringSlice("accept-rollback"),
		Progress:       prog, ToolVersion: version, Passphrase: ask,
	})
	prog.Stop()
	if ie := interrupted(c.Context); err != nil && ie != nil {
		// Sync saves its state only as its last step and returns no
		// error after it: nothing was recorded; the downloads that were
		// checked are in the cache.
		return fmt.Errorf("%w; nothing was recorded, the next run resumes", ie)
	}
	if err != nil {
		return syncError(err, cfg)
	}
	out := c.App.Writer
	for _, p := range res.Packages {
		if p.Status == mirror.StatusRejected && format == "text" {
			// A verdict's reason may begin with the package's name.
			id := p.Source + ":" + p.Name
			fmt.Fprintf(stderr, "mirror: rejected %s: %s\n", terminalSafe(id), terminalSafe(strings.TrimPrefix(p.Reason, id+": ")))
		}
	}
	if format == "json" {
		if res.CacheError != "" {
			prog.Warning(res.CacheError + " (the bundle and state are complete; the next run tries again)")
		}
		exit := exitOK
		if res.Rejected > 0 {
			exit = exitRejected
		}
		out.Write(jsonLine(map[string]any{"event": "summary", "exit": exit, "result": res}))
	} else {
		if res.DryRun {
			printPlan(out, res)
		}
		fmt.Fprintln(out, summaryLine(res))
	}
	if res.KeyProblem != "" && format == "text" {
		fmt.Fprintf(stderr, "mirror: warning: a run without --dry-run would stop at its start: %s\n", terminalSafe(res.KeyProblem))
	}
	if res.CacheError != "" && format == "text" {
		fmt.Fprintf(stderr, "mirror: warning: %s (the bundle and state are complete; the next run tries again)\n", terminalSafe(res.CacheError))
	} else if res.CacheCollected.Blobs > 0 && format == "text" {
		fmt.Fprintf(stderr, "mirror: cache: removed %s (%s)\n", plural(res.CacheCollected.Blobs, "superseded file"), fmtBytes(res.CacheCollected.Bytes))
	}
	if res.Rejected > 0 {
		verb := " were rejected"
		if res.Rejected == 1 {
			verb = " was rejected"
		}
		return &rejectedError{msg: plural(res.Rejected, "package") + verb}
	}
	return nil
}

func printPlan(w interface{ Write([]byte) (int, error) }, res *mirror.SyncResult) {
	for _, p := range res.Packages {
		what := p.Status
		switch {
		case p.Status == mirror.StatusRejected:
			continue
		case p.SHA256 == "":
			what = "fetch"
		}
		fmt.Fprintf(w, "%-9s %s:%s\n", what, p.Source, terminalSafe(p.Name))
	}
	unknown := ""
	if res.UnknownSize > 0 {
		unknown = fmt.Sprintf(" (+ %s of unknown size)", plural(res.UnknownSize, "file"))
	}
	fmt.Fprintf(w, "plan: %d to fetch, %s known%s; signatures and checksum lists were fetched for this plan, no package was\n",
		res.ToFetch, fmtBytes(res.BytesToFetch), unknown)
}

// summaryLine is the one-line result of a run.
func summaryLine(res *mirror.SyncResult) string {
	s := fmt.Sprintf("sync: %d new, %d unchanged, %d rejected; %s downloaded; ", res.New, res.Unchanged, res.Rejected, fmtBytes(res.BytesDownloaded))
	switch {
	case res.DryRun:
		s += "dry run, no bundle"
	case res.Bundle != nil:
		kind := "full"
		if res.Bundle.BaseSequence != 0 {
			kind = fmt.Sprintf("delta on %d", res.Bundle.BaseSequence)
		}
		s += fmt.Sprintf("bundle %s (sequence %d, %s, %s, %s)", res.Bundle.Path, res.Bundle.Sequence, kind, plural(res.Bundle.Blobs, "blob"), fmtBytes(res.Bundle.Size))
	case res.NothingNew:
		s += "nothing new, no bundle"
	default:
		s += "nothing accepted, no bundle"
	}
	return s + fmt.Sprintf("; %s", res.Elapsed.Round(time.Millisecond))
}

// syncError adds the hint that says what to do.
func syncError(err error, cfg *mirror.Config) error {
	switch {
	case errors.Is(err, lock.ErrLocked):
		return withHint(err, "another mirror sync is running on "+cfg.Output.State+"; let it finish (cron: do not start runs closer than a run takes)")
	case errors.Is(err, operator.ErrNoPassphrase):
		return withHint(err, "for cron, set operator.passphrase_file in the config or MIRROR_PASSPHRASE_FILE")
	case errors.As(err, new(*operator.PassphraseFileError)):
		return withHint(err, passphraseFileHint(err))
	case errors.Is(err, operator.ErrPassphrase):
		src := operator.PassphraseSource(os.Getenv, cfg.Operator.PassphraseFile)
		if src == "" {
			src = "the terminal"
		}
		return withHint(err, "this run took the passphrase from "+src+"; it must be the one given to mirror keygen ("+
			operator.EnvPassphraseFile+" wins over "+operator.EnvPassphrase+", which wins over operator.passphrase_file)")
	case errors.Is(err, mirror.ErrReceipt):
		return withHint(err, "pass the receipt.json that mirror import wrote in the repository inside")
	case errors.Is(err, syscall.ENOSPC):
		return withHint(err, "free space on the disk of the file named above (state: "+cfg.Output.State+", bundles: "+cfg.Output.Dir+
			") and run again; nothing was recorded (downloads resume from the cache)")
	case errors.Is(err, mirror.ErrUpstreamRollback), errors.Is(err, mirror.ErrRollbackMark):
		return withHint(err, "nothing was recorded; running again helps only once the upstream serves its newest release again (or see --accept-rollback above)")
	case clientError(err):
		return withHint(err, "the upstream refused a request that the configuration makes (a 4xx answer): running again will not help; check the source's url, suites and files in "+cfg.File+"; nothing was recorded")
	case errors.Is(err, mirror.ErrSync):
		return withHint(err, "nothing was recorded; run again (downloads resume from the cache)")
	}
	return err
}

// clientError reports whether err holds an HTTP 4xx answer other than a
// rate limit or a timeout (those pass when retried later).
func clientError(err error) bool {
	var he *fetch.HTTPError
	return errors.As(err, &he) && he.Status >= 400 && he.Status < 500 && he.Status != http.StatusTooManyRequests && he.Status != http.StatusRequestTimeout
}
