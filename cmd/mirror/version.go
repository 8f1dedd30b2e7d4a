package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:      "version",
		Usage:     "print the version of this program (as --version does)",
		UsageText: "mirror version",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("version takes no arguments, got %q", c.Args().First())
			}
			fmt.Fprintf(c.App.Writer, "mirror version %s\n", c.App.Version)
			return nil
		},
	})
}
