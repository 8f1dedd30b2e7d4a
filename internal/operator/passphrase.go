package operator

import (
	"bytes"
	"errors"
	"fmt"
)

// Environment variables that give the passphrase without a terminal (cron).
const (
	// EnvPassphraseFile names a file holding the passphrase.
	EnvPassphraseFile = "MIRROR_PASSPHRASE_FILE"
	// EnvPassphrase holds the passphrase itself.
	EnvPassphrase = "MIRROR_PASSPHRASE"
)

var (
	// ErrNoPassphrase is returned by Passphrase when no source is set; the
	// command line then asks on the terminal, if there is one.
	ErrNoPassphrase = errors.New("no passphrase source: set " + EnvPassphraseFile + " or " + EnvPassphrase + ", or operator.passphrase_file in the config")
	// ErrEmptyPassphrase is returned for an empty passphrase.
	ErrEmptyPassphrase = errors.New("the passphrase is empty")
)

// Passphrase returns the operator key's passphrase from the non-interactive
// sources, first found wins:
//
//  1. the file named by MIRROR_PASSPHRASE_FILE,
//  2. MIRROR_PASSPHRASE,
//  3. file (the config's operator.passphrase_file; "" when not set).
//
// The environment comes first so that one run can override the config.
// getenv is os.Getenv outside tests. A passphrase file holds the passphrase
// on its first line; one trailing newline (LF or CRLF) is removed. With no
// source it returns ErrNoPassphrase.
func Passphrase(getenv func(string) string, file string) ([]byte, error) {
	if p := getenv(EnvPassphraseFile); p != "" {
		return ReadPassphraseFile(p)
	}
	if v := getenv(EnvPassphrase); v != "" {
		return []byte(v), nil
	}
	if file != "" {
		return ReadPassphraseFile(file)
	}
	return nil, ErrNoPassphrase
}

// ReadPassphraseFile reads a passphrase file (at most MaxPassphraseSize
// bytes), removing one trailing newline.
func ReadPassphraseFile(path string) ([]byte, error) {
	data, err := readLimited(path, MaxPassphraseSize)
	if err != nil {
		return nil, fmt.Errorf("read passphrase file: %w", err)
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	if len(data) == 0 {
		return nil, &FileError{Path: path, Err: ErrEmptyPassphrase}
	}
	if bytes.ContainsAny(data, "\r\n") {
		return nil, &FileError{Path: path, Err: errors.New("a passphrase file holds one line")}
	}
	return data, nil
}
