//go:build slow

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/internal/operator"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestKeygenOnTerminal runs the built binary on a real pseudo-terminal
// (script(1)) with no passphrase in the environment: keygen must ask twice
// on the terminal, not echo what is typed, and write a key that opens with
// that passphrase, at minisign's real scrypt limits.
func TestKeygenOnTerminal(t *testing.T) {
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script (util-linux) is needed: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "mirror")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "keys")
	const pass = "typed on the terminal"
	cmd := exec.Command(scriptBin, "-qec", bin+" keygen --out "+dir, "/dev/null")
	cmd.Env = append(os.Environ(), operator.EnvPassphrase+"=", operator.EnvPassphraseFile+"=")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	typed := 0
	deadline := time.After(3 * time.Minute)
loop:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("keygen on a terminal: %v\n%s", err, out.String())
			}
			break loop
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("keygen did not finish:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
			if strings.Count(out.String(), "passphrase for the new operator key") > typed {
				time.Sleep(300 * time.Millisecond) // let it turn echo off first
				stdin.Write([]byte(pass + "\n"))
				typed++
			}
		}
	}
	stdin.Close()
	if typed != 2 {
		t.Errorf("asked %d times, want 2:\n%s", typed, out.String())
	}
	if strings.Contains(out.String(), pass) {
		t.Errorf("the passphrase was echoed:\n%s", out.String())
	}
	if _, err := operator.Load(filepath.Join(dir, operator.KeyFile), []byte(pass)); err != nil {
		t.Fatalf("the key does not open with the typed passphrase: %v", err)
	}
}
