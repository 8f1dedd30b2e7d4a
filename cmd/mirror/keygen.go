package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mirror-tool/mirror/internal/operator"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:      "keygen",
		Usage:     "make the operator key (operator.key, operator.pub, operator.asc)",
		UsageText: "mirror keygen --out DIR [--unencrypted]",
		Description: `Writes DIR/operator.key (the secret, a minisign secret key encrypted with a
passphrase), DIR/operator.pub (the minisign public key that mirror import pins)
and DIR/operator.asc (the same key as an armored OpenPGP public key, for apt
clients' signed-by). Existing files are never overwritten.

The passphrase comes from MIRROR_PASSPHRASE_FILE (a file), MIRROR_PASSPHRASE,
or else is asked twice on the terminal. Keep operator.asc beside operator.key:
mirror sync needs both.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "the `DIR` to write the three files to (created if missing)"},
			&cli.BoolFlag{Name: "unencrypted", Usage: "write operator.key without a passphrase (anyone who reads it can sign bundles)"},
		},
		Action: keygenAction,
	})
}

func keygenAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("keygen takes no arguments, got %q", c.Args().First())
	}
	dir := c.String("out")
	if dir == "" {
		return usageError("keygen: --out DIR is required")
	}
	stderr := c.App.ErrWriter
	// Refuse before asking for a passphrase; Write checks again, atomically.
	for _, name := range []string{operator.KeyFile, operator.PubFile, operator.AscFile} {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			return keygenExists(p)
		}
	}
	keyPath := filepath.Join(dir, operator.KeyFile)
	var pass []byte
	if c.Bool("unencrypted") {
		fmt.Fprintf(stderr, "mirror: warning: %s is written without a passphrase; anyone who can read it can sign bundles and apt indexes\n", keyPath)
	} else {
		var err error
		pass, err = operatorPassphrase(c.Context, "", "the new operator key", true)
		switch {
		case errors.Is(err, operator.ErrNoPassphrase):
			return withHint(err, "run keygen on a terminal, or set "+operator.EnvPassphraseFile+"=FILE, or pass --unencrypted")
		case errors.Is(err, operator.ErrEmptyPassphrase):
			return withHint(err, "choose a passphrase, or pass --unencrypted for a key without one")
		case errors.As(err, new(*operator.PassphraseFileError)):
			return withHint(err, passphraseFileHint(err))
		case errors.Is(err, errPassphraseMismatch):
			return withHint(err, "run keygen again and type the same passphrase twice")
		case err != nil:
			return err
		}
	}
	k, err := operator.Generate(rand.Reader, time.Now())
	if err != nil {
		return err
	}
	if pass != nil {
		fmt.Fprintf(stderr, "mirror: encrypting %s (scrypt, 128 MiB of memory, a few seconds)\n", keyPath)
	}
	if err := k.Write(dir, pass); err != nil {
		var fe *operator.FileError
		if errors.Is(err, fs.ErrExist) && errors.As(err, &fe) {
			return keygenExists(fe.Path)
		}
		return withHint(fmt.Errorf("write operator key to %s: %w", dir, err), "check that "+dir+" is writable; nothing was written")
	}
	out := c.App.Writer
	enc := "encrypted with the passphrase"
	if pass == nil {
		enc = "NOT encrypted"
	}
	fmt.Fprintf(out, "secret key:          %s (%s; keep it secret)\n", keyPath, enc)
	fmt.Fprintf(out, "minisign public key: %s\n", filepath.Join(dir, operator.PubFile))
	fmt.Fprintf(out, "minisign key id:     %s\n", k.Minisign.ID)
	fmt.Fprintf(out, "minisign key:        %s\n", k.Public())
	fmt.Fprintf(out, "openpgp public key:  %s\n", filepath.Join(dir, operator.AscFile))
	fmt.Fprintf(out, "openpgp fingerprint: %s\n", k.Fingerprint())
	return nil
}

func keygenExists(path string) error {
	return withHint(fmt.Errorf("%s already exists; keygen never overwrites a key", path),
		"choose another --out DIR, or move the old key away first (bundles it signed verify only with its operator.pub)")
}
