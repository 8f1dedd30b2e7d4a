package operator

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
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
	switch src, path := passphraseSource(getenv, file); src {
	case EnvPassphrase:
		return []byte(getenv(EnvPassphrase)), nil
	case "":
		return nil, ErrNoPassphrase
	default:
		p, err := ReadPassphraseFile(path)
		if err != nil {
			return nil, &PassphraseFileError{Source: src, Path: path, Err: err}
		}
		return p, nil
	}
}

// PassphraseFileError is returned by Passphrase when the passphrase file
// cannot be read or holds no valid passphrase. Source says who named the
// file: EnvPassphraseFile or "operator.passphrase_file".
type PassphraseFileError struct {
	Source string
	Path   string
	Err    error // from ReadPassphraseFile
}

func (e *PassphraseFileError) Error() string {
	cause := e.Err
	var pe *fs.PathError
	var fe *FileError
	switch {
	case errors.As(e.Err, &pe):
		cause = pe.Err // the path is said once, below
	case errors.As(e.Err, &fe):
		cause = fe.Err
	}
	return fmt.Sprintf("passphrase file %s (named by %s): %v", e.Path, e.Source, cause)
}

func (e *PassphraseFileError) Unwrap() error { return e.Err }

// PassphraseSource says where Passphrase takes the passphrase from, for
// messages: "MIRROR_PASSPHRASE_FILE (PATH)", "MIRROR_PASSPHRASE",
// "operator.passphrase_file (PATH)", or "" when no source is set (the
// command line then asks on the terminal). It reads nothing.
func PassphraseSource(getenv func(string) string, file string) string {
	switch src, path := passphraseSource(getenv, file); src {
	case EnvPassphrase, "":
		return src
	default:
		return src + " (" + path + ")"
	}
}

// passphraseSource is the one place that orders the sources: the source's
// name (an environment variable or "operator.passphrase_file") and the file
// it names, if any.
func passphraseSource(getenv func(string) string, file string) (src, path string) {
	switch {
	case getenv(EnvPassphraseFile) != "":
		return EnvPassphraseFile, getenv(EnvPassphraseFile)
	case getenv(EnvPassphrase) != "":
		return EnvPassphrase, ""
	case file != "":
		return "operator.passphrase_file", file
	}
	return "", ""
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
