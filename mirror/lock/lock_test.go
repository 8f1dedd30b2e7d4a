package lock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The helper process: when MIRROR_LOCK_HELPER names a folder, the test
// binary takes the lock on it, says "locked", and holds it until its stdin
// closes (or it is killed).
func TestMain(m *testing.M) {
	if dir := os.Getenv("MIRROR_LOCK_HELPER"); dir != "" {
		l, err := Acquire(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		bufio.NewReader(os.Stdin).ReadString('\n')
		if os.Getenv("MIRROR_LOCK_HELPER_RELEASE") != "" {
			l.Release()
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type holder struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
}

func startHolder(t *testing.T, dir string, release bool) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MIRROR_LOCK_HELPER="+dir)
	if release {
		cmd.Env = append(cmd.Env, "MIRROR_LOCK_HELPER_RELEASE=1")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper did not take the lock: %q %v", line, err)
	}
	return &holder{cmd: cmd, stdin: stdin}
}

func TestContentionNamesHolder(t *testing.T) {
	dir := t.TempDir()
	before := time.Now().Add(-time.Second)
	h := startHolder(t, dir, true)

	l, err := Acquire(dir)
	if err == nil {
		l.Release()
		t.Fatal("acquired a lock that another process holds")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("err %T is not a *LockedError", err)
	}
	if le.PID != h.cmd.Process.Pid {
		t.Fatalf("holder pid %d, want %d", le.PID, h.cmd.Process.Pid)
	}
	if le.Started.Before(before.Truncate(time.Second)) || le.Started.After(time.Now()) {
		t.Fatalf("holder start %v is not now", le.Started)
	}
	msg := err.Error()
	for _, want := range []string{fmt.Sprintf("pid %d", le.PID), dir, "released when that process exits"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}

	// The holder releases and exits: the lock is free.
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	l, err = Acquire(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	defer l.Release()
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	if !strings.HasPrefix(string(b), fmt.Sprint(os.Getpid())+" ") {
		t.Fatalf("lock file says %q, want our pid", b)
	}
}

func TestCrashedHolderReleases(t *testing.T) {
	dir := t.TempDir()
	h := startHolder(t, dir, false)
	if _, err := Acquire(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	// SIGKILL: no chance to clean up.
	h.cmd.Process.Kill()
	h.cmd.Wait()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("lock of a killed holder not released: %v", err)
	}
	l.Release()
}

func TestReleaseAndReacquireInProcess(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A second open file description in the same process conflicts too.
	if _, err := Acquire(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	l2.Release()
	// The lock file stays.
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
}

func TestMissingDir(t *testing.T) {
	if _, err := Acquire(filepath.Join(t.TempDir(), "nope")); err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v", err)
	}
}

func TestReadInfoGarbage(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	for _, content := range []string{"", "garbage", "12 notatime", "-5 2026-01-01T00:00:00Z", strings.Repeat("9", 5000)} {
		os.WriteFile(p, []byte(content), 0o644)
		f, _ := os.Open(p)
		pid, started := readInfo(f)
		f.Close()
		if pid < 0 || (content == "" && (pid != 0 || !started.IsZero())) {
			t.Errorf("readInfo(%q) = %d, %v", content, pid, started)
		}
	}
	os.WriteFile(p, []byte("1234 2026-11-25T09:12:00Z\n"), 0o644)
	f, _ := os.Open(p)
	pid, started := readInfo(f)
	f.Close()
	if pid != 1234 || !started.Equal(time.Date(2026, 11, 25, 9, 12, 0, 0, time.UTC)) {
		t.Fatalf("readInfo = %d, %v", pid, started)
	}
}

// TestLinkRefused: a symbolic link at the lock file's name is not followed
// (Acquire truncates the lock file and writes its holder line into it:
// through a link, into whatever it points to). Acquire fails and the
// target is untouched.
func TestLinkRefused(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if l, err := Acquire(dir); err == nil {
		l.Release()
		t.Fatal("Acquire followed a symbolic link")
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious" {
		t.Fatalf("the link's target now holds %q (%v)", b, err)
	}
}
