package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every command and subcommand reports a flag it does not know as a usage
// error: exit 2, a message, and the hint.
func TestUnknownFlagIsUsageError(t *testing.T) {
	var names [][]string
	for _, c := range commands {
		if len(c.Subcommands) == 0 {
			names = append(names, []string{c.Name})
		}
		for _, s := range c.Subcommands {
			names = append(names, []string{c.Name, s.Name})
		}
	}
	if len(names) < 8 {
		t.Fatalf("only %d commands registered: %v", len(names), names)
	}
	for _, n := range names {
		var stdout, stderr bytes.Buffer
		args := append(append([]string{"mirror"}, n...), "--no-such-flag")
		code := run(context.Background(), args, &stdout, &stderr)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr: %s", n, code, exitUsage, stderr.String())
		}
		if !strings.Contains(stderr.String(), "no-such-flag") || !strings.Contains(stderr.String(), "mirror: hint:") {
			t.Errorf("%v: stderr does not name the flag and give a hint: %q", n, stderr.String())
		}
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"mirror", "frobnicate"}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitUsage, stderr.String())
	}
}
