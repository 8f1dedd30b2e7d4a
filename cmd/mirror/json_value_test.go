package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// TestReviewJSONErrorKeepsValue: jsonLine already escapes what a terminal
// could act on as \u escapes (a JSON reader decodes the same value); the
// {"event":"error"} message must decode to the error's text, with its line
// breaks (an errors.Join of two refusals), not to a literal backslash-n.
// TestJSONErrorKeepsValue: a JSON error event decodes to the error's own
// text (jsonLine escapes unsafe runes losslessly); escaping it for a
// terminal first made a line break and a real backslash-n look alike.
func TestJSONErrorKeepsValue(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := errors.Join(errors.New(`refused a.tar.zst`), errors.New(`refused b\n.tar.zst`))
	reportJSON(&stdout, &stderr, err, "mirror sync")
	var ev struct{ Message string }
	if jerr := json.Unmarshal(bytes.TrimSpace(stderr.Bytes()), &ev); jerr != nil {
		t.Fatalf("%v: %s", jerr, stderr.Bytes())
	}
	if ev.Message != err.Error() {
		t.Fatalf("JSON message decodes to %q, want the error %q (two messages and a file name with a real backslash are no longer told apart)", ev.Message, err.Error())
	}
}
