package main

import (
	"errors"
	"fmt"
	"net"

	"github.com/urfave/cli/v2"

	"github.com/mirror-tool/mirror/mirror/repo"
	"github.com/mirror-tool/mirror/mirror/serve"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:      "serve",
		Usage:     "serve the repository's current generation over HTTP, read-only",
		UsageText: "mirror serve --repo DIR [--listen ADDRESS]",
		Description: "Serves the generation that the repository --repo DIR serves (DIR/current, plain files:\n" +
			"nginx can serve the same folder), read-only; an import switches it atomically. Listens on\n" +
			"loopback unless --listen says otherwise; stops gracefully on SIGINT/SIGTERM.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "repo", Usage: "the repository `DIR` (written by mirror import)"},
			&cli.StringFlag{Name: "listen", Value: serve.DefaultListen, Usage: "address to listen on"},
		},
		Action: serveAction,
	})
}

func serveAction(c *cli.Context) error {
	if c.String("repo") == "" {
		return usageError("serve: --repo is required")
	}
	if c.NArg() != 0 {
		return usageError("serve: unexpected argument %q", c.Args().First())
	}
	dir := c.String("repo")
	if err := repoFolderExists(dir); err != nil {
		return err
	}
	n, err := repo.Current(dir)
	if err != nil {
		if errors.Is(err, repo.ErrNotRepository) {
			return withHint(err, "import a bundle first: mirror import --pub operator.pub --repo "+dir+" BUNDLE")
		}
		return err
	}
	l, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return withHint(fmt.Errorf("listen on %s: %w", c.String("listen"), err), "choose another --listen address")
	}
	if tcp, ok := l.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		fmt.Fprintf(c.App.ErrWriter, "mirror: note: listening on %s, not loopback: the mirror is reachable from the network\n", l.Addr())
	}
	fmt.Fprintf(c.App.ErrWriter, "mirror: serving %s (generation %d) on http://%s/\n", dir, n, l.Addr())
	return serve.Serve(c.Context, l, dir)
}
