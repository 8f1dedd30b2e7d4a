package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/mirror-tool/mirror/internal/operator"
)

// errNoTerminal is returned by readPassword when there is no terminal to
// ask on (cron, a pipe, a container without a tty).
var errNoTerminal = errors.New("no terminal to ask for it on")

// haveTerminal reports whether readPassword has a terminal to ask on.
// Tests replace it.
var haveTerminal = func() bool {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer tty.Close()
	return term.IsTerminal(int(tty.Fd()))
}

// errPassphraseMismatch is returned when the two entries of a new
// passphrase differ.
var errPassphraseMismatch = errors.New("the two passphrases differ")

// errNoPassphraseNoConfig is operator.ErrNoPassphrase for keygen, which
// reads no config: its message names only the variables.
var errNoPassphraseNoConfig error = &noPassphraseError{}

type noPassphraseError struct{}

func (*noPassphraseError) Error() string {
	return "no passphrase source: set " + operator.EnvPassphraseFile + " or " + operator.EnvPassphrase + "; and " + errNoTerminal.Error()
}

func (*noPassphraseError) Unwrap() error { return operator.ErrNoPassphrase }

// readPassword asks for a passphrase on the controlling terminal (not on
// stdout or stderr, which may be redirected), without echo. Tests replace it.
var readPassword = func(ctx context.Context, prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, errNoTerminal
	}
	defer tty.Close()
	fd := int(tty.Fd())
	if !term.IsTerminal(fd) {
		return nil, errNoTerminal
	}
	state, err := term.GetState(fd)
	if err != nil {
		return nil, errNoTerminal
	}
	fmt.Fprint(tty, prompt)
	type result struct {
		p   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := term.ReadPassword(fd)
		done <- result{p, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(tty)
		return r.p, r.err
	case <-ctx.Done():
		// Interrupted: give the terminal its echo back before leaving.
		term.Restore(fd, state)
		fmt.Fprintln(tty)
		return nil, ctx.Err()
	}
}

// operatorPassphrase returns the operator key's passphrase from
// MIRROR_PASSPHRASE_FILE, MIRROR_PASSPHRASE or file (the config's
// passphrase_file), and else asks on the terminal: twice when confirm is set
// (a new key, which keygen makes: it reads no config, and file is ""). what
// names the key in the prompt. Without any source it returns an error
// matching operator.ErrNoPassphrase.
func operatorPassphrase(ctx context.Context, file, what string, confirm bool) ([]byte, error) {
	p, err := operator.Passphrase(os.Getenv, file)
	if !errors.Is(err, operator.ErrNoPassphrase) {
		return p, err
	}
	p, terr := readPassword(ctx, "passphrase for "+what+": ")
	if errors.Is(terr, errNoTerminal) {
		if confirm {
			// keygen: no config whose passphrase_file could be set.
			return nil, errNoPassphraseNoConfig
		}
		return nil, fmt.Errorf("%w; and %v", err, terr)
	}
	if terr != nil {
		return nil, fmt.Errorf("read passphrase: %w", terr)
	}
	if len(p) == 0 {
		return nil, operator.ErrEmptyPassphrase
	}
	if confirm {
		again, err := readPassword(ctx, "passphrase for "+what+" (again): ")
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		if !bytes.Equal(p, again) {
			return nil, errPassphraseMismatch
		}
	}
	return p, nil
}

// passphraseFileHint says what to do about a passphrase file that could not
// be used (err matches *operator.PassphraseFileError), naming who named it.
func passphraseFileHint(err error) string {
	var pe *operator.PassphraseFileError
	if !errors.As(err, &pe) {
		return ""
	}
	h := "the file named by " + pe.Source + " must be readable by this user and hold the passphrase on one line"
	if pe.Source == operator.EnvPassphraseFile {
		h += "; " + operator.EnvPassphraseFile + " wins over " + operator.EnvPassphrase + " and operator.passphrase_file: unset it to use those"
	}
	return h
}
