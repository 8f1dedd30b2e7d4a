package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mirror-tool/mirror/mirror"
	"github.com/mirror-tool/mirror/mirror/repo"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:      "status",
		Usage:     "show what a repository serves, its generations and its import log",
		UsageText: "mirror status --repo DIR [--json] [--log N]",
		Description: "Prints the sequence served, the bundle and the operator key that signed it, its expiry\n" +
			"(EXPIRED when past), when it was imported, what it holds, the generations kept, and the\n" +
			"last --log lines of the import log (imports, refusals, failures). Reads nothing but the\n" +
			"repository's own files. Exit 0, or 1 when the folder holds no imported generation.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "repo", Usage: "the repository folder"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.IntFlag{Name: "log", Value: 5, Usage: "import log lines to show"},
		},
		Action: statusAction,
	})
}

func statusAction(c *cli.Context) error {
	if c.String("repo") == "" {
		return usageError("status: --repo is required")
	}
	if c.NArg() != 0 {
		return usageError("status: unexpected argument %q", c.Args().First())
	}
	dir := c.String("repo")
	if err := repoFolderExists(dir); err != nil {
		return err
	}
	st, err := mirror.Status(c.Context, dir, time.Now(), max(c.Int("log"), 0))
	if err != nil && !errors.Is(err, repo.ErrNotRepository) {
		return err
	}
	out := c.App.Writer
	if c.Bool("json") {
		if err := writeJSON(out, st); err != nil {
			return err
		}
	} else {
		printStatus(c, st, err != nil)
	}
	if err != nil {
		return withHint(err, "import a bundle first: mirror import --pub operator.pub --repo "+dir+" BUNDLE")
	}
	return nil
}

func printStatus(c *cli.Context, st *mirror.StatusReport, empty bool) {
	out := c.App.Writer
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(out, "repository:  %s\n", st.Repo)
	if !empty {
		kind := "full"
		if st.BaseSeq != 0 {
			kind = fmt.Sprintf("delta on %d", st.BaseSeq)
		}
		fmt.Fprintf(out, "serving:     sequence %d (%s), bundle %s\n", st.Sequence, kind, st.BundleID)
		fmt.Fprintf(out, "signed:      %s by operator key %s\n", ts(st.Created), st.Signer)
		exp := "valid until " + ts(st.Expires)
		if st.Expired {
			exp = "EXPIRED at " + ts(st.Expires) + ": carry receipt.json out; `mirror sync --since receipt.json` makes a fresh bundle"
		}
		fmt.Fprintf(out, "expiry:      %s\n", exp)
		fmt.Fprintf(out, "imported:    %s\n", ts(st.Imported))
		fmt.Fprintf(out, "content:     %s, %s, %s served; %s, %s held\n",
			plural(st.Packages, "package"), plural(st.Files, "file"), fmtBytes(st.Bytes), plural(st.HeldBlobs, "blob"), fmtBytes(st.HeldBytes))
		fmt.Fprintf(out, "generations: %v\n", st.Generations)
	}
	if len(st.Log) > 0 {
		fmt.Fprintf(out, "import log:\n")
	}
	for _, e := range st.Log {
		fmt.Fprintf(out, "  %s  %-16s seq %-4d %s\n", ts(e.Time), e.Result, e.Sequence, terminalSafe(e.Message))
	}
}

// repoFolderExists tells a --repo that names no folder at all (a typo)
// from a repository with nothing imported yet.
func repoFolderExists(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return withHint(fmt.Errorf("repository %s: no such folder", dir), "check --repo: mirror import creates the repository, mirror status and serve only read it")
	case err == nil && !fi.IsDir():
		return withHint(fmt.Errorf("repository %s: not a folder", dir), "check --repo")
	}
	return nil // other errors: Status and Current say them
}
