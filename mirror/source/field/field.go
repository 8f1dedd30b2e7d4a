// Package field is the error a source type's configuration check returns
// about one field of its [[source]] table, so that the config loader can
// point at that field's line. Every source type (files, apt) uses it.
package field

import "fmt"

// Error is what a source's Validate finds wrong with one field ("" when no
// one field is at fault). It matches Kind (the source type's ErrConfig).
type Error struct {
	Kind   error  // the source type's ErrConfig
	Source string // the source's name
	Field  string // the TOML key, "" for the table as a whole
	Msg    string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%v %q: %s", e.Kind, e.Source, e.Msg)
	}
	return fmt.Sprintf("%v %q: %s: %s", e.Kind, e.Source, e.Field, e.Msg)
}

func (e *Error) Unwrap() error { return e.Kind }

// Failer returns the function a Validate reports with.
func Failer(kind error, source string) func(field, format string, args ...any) error {
	return func(field, format string, args ...any) error {
		return &Error{Kind: kind, Source: source, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
}
