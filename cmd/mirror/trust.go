package main

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mirror-tool/mirror/verify"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:  "trust",
		Usage: "work with the trust file",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "check a file's signatures against the trust file and print the verdict",
			ArgsUsage: "FILE SIG...",
			Description: "Loads the [trust] table of --config, verifies every SIG (OpenPGP detached, armored or\n" +
				"binary; minisign; SSH) over FILE, and decides for --package SOURCE:NAME with the keys'\n" +
				"allow lists and the rules' thresholds. As in sync, a minisign signature whose trusted\n" +
				"comment names another file than NAME's last element is refused (a substitution). Not done\n" +
				"here: the rollback check, which needs sync's state (the signing time mirrored before).\n" +
				"Exit 0 accepted, 3 rejected, 1 error, 2 usage.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "config", Usage: "mirror.toml (or a trust file) with a [trust] table"},
				&cli.StringFlag{Name: "package", Usage: "the package the file is, as SOURCE:NAME (e.g. tools:hello/hello-2.12.tar.gz)"},
				&cli.BoolFlag{Name: "json", Usage: "print the verdict as JSON"},
				&cli.StringFlag{Name: "at", Usage: "decide as of this time (RFC 3339, e.g. 2026-01-01T00:00:00Z) instead of now"},
			},
			Action: trustCheckAction,
		}},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.ShowSubcommandHelp(c)
			}
			return unknownSubcommand("mirror trust", c.Command.VisibleCommands(), c.Args().First())
		},
	})
}

func trustCheckAction(c *cli.Context) error {
	cfg, pkg := c.String("config"), c.String("package")
	switch {
	case cfg == "":
		return usageError("trust check: --config is required")
	case pkg == "":
		return usageError("trust check: --package SOURCE:NAME is required")
	case !strings.Contains(pkg, ":") || strings.HasPrefix(pkg, ":") || strings.HasSuffix(pkg, ":"):
		return usageError("trust check: --package %q is not SOURCE:NAME", pkg)
	case c.NArg() < 2:
		return usageError("trust check: give the FILE and at least one SIG")
	}
	now := time.Now()
	if at := c.String("at"); at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return usageError("trust check: --at %q is not an RFC 3339 time such as 2026-01-01T00:00:00Z", at)
		}
		now = t
	}
	policy, _, err := verify.LoadTrustFile(cfg)
	if err != nil {
		return withHint(err, "fix the trust file; docs/trust.md lists every field")
	}
	args := c.Args().Slice()
	// The name the package is served under, as sync gives it: a minisign
	// signature whose trusted comment names another file is refused
	// (a substitution), here as in sync.
	served := path.Base(pkg[strings.Index(pkg, ":")+1:])
	var sigs []verify.Signature
	for _, name := range args[1:] {
		data, err := readHead(name, verify.MaxSignatureSize)
		if err != nil {
			return fmt.Errorf("signature %s: %w", name, err)
		}
		sigs = append(sigs, verify.Signature{Name: filepath.Base(name), Data: data, File: served})
	}
	f, err := os.Open(args[0])
	if err != nil {
		return fmt.Errorf("file to check: %w", err)
	}
	defer f.Close()
	v, err := policy.Check(c.Context, pkg, f, sigs, now)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	out := c.App.Writer
	if c.Bool("json") {
		if err := writeJSON(out, v); err != nil {
			return err
		}
	} else {
		fmt.Fprint(out, v.String())
	}
	if !v.Accepted {
		return &rejectedError{msg: pkg + " was rejected (the verdict above says why)"}
	}
	return nil
}

// readHead reads at most limit+1 bytes of a file: a larger signature then
// reaches verify, which rejects it as too large instead of it being cut.
func readHead(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}
