package minisign

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// Keys written by tests use scrypt limits small enough for -race. The
	// file format is the same and the stock tool reads the limits from the
	// file; TestStockReadsDefaultEncryptedKey (slow) uses the real defaults.
	SetKDFLimitsForTest(32768, 1<<20)
	os.Exit(m.Run())
}

// testdataPassword is the password of testdata/enc.key
// (scripts/gen-minisign-testdata).
const testdataPassword = "testdata password"

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("%v (run scripts/gen-minisign-testdata)", err)
	}
	return b
}

func testdataGlob(t testing.TB, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 {
		t.Fatalf("no testdata/%s: run scripts/gen-minisign-testdata", pattern)
	}
	return m
}

func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed for this cross-check (scripts/test installs it): %v", name, err)
	}
	return p
}

// runMinisign runs the stock tool without a terminal.
func runMinisign(t testing.TB, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(tool(t, "minisign"), args...).CombinedOutput()
	return string(out), err
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// runMinisignPTY runs the stock tool on a pseudo-terminal made by
// `script` (util-linux), since minisign reads passwords only from a
// terminal, and types password at each "Password" prompt. minisign flushes
// terminal input when it turns echo off, so the password is typed a moment
// after the prompt shows, and typed again if nothing happens.
func runMinisignPTY(t testing.TB, password string, args ...string) (string, error) {
	t.Helper()
	tool(t, "minisign")
	cmd := exec.Command(tool(t, "script"), "-qec", "minisign "+shellQuote(args), "/dev/null")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(2 * time.Minute)
	typed, lastTyped, lastOut := 0, time.Time{}, ""
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			stdin.Close()
			return out.String(), err
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatalf("minisign %v did not finish; output:\n%s", args, out.String())
		case <-tick.C:
			o := out.String()
			prompts := strings.Count(o, "Password")
			stuck := typed > 0 && o == lastOut && time.Since(lastTyped) > 3*time.Second
			if (prompts > typed || stuck) && time.Since(lastTyped) > 300*time.Millisecond {
				time.Sleep(300 * time.Millisecond)
				stdin.Write([]byte(password + "\n"))
				typed, lastTyped = max(prompts, typed+1), time.Now()
			}
			if o != lastOut {
				lastOut = o
			}
		}
	}
}
