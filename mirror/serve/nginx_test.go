//go:build slow

package serve

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/repo"
)

// TestNginxSnippet runs the real nginx with the README's snippet against a
// repository: files served whole with ETag and Range, planted symlinks and
// traversal refused, and a switch seen by the next request.
func TestNginxSnippet(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Fatal("nginx is needed for this test (apt-get install nginx):", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The server block of the README, as written there.
	_, rest, ok := bytes.Cut(readme, []byte("```nginx\n"))
	block, _, ok2 := bytes.Cut(rest, []byte("```"))
	if !ok || !ok2 {
		t.Fatal("README has no ```nginx block")
	}
	base, err := os.MkdirTemp("/var/tmp", "mirror-nginx-") // nginx workers (nobody) must reach it
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	dir := filepath.Join(base, "repo")
	publish(t, dir, 1, map[string][]byte{"tools/a.txt": []byte("one"), "debian/InRelease": []byte("release 1")}, 3)
	secret := filepath.Join(base, "secret.txt")
	os.WriteFile(secret, []byte("SECRET"), 0o644)
	os.Symlink(secret, filepath.Join(repo.GenerationPath(dir, 1), "tools", "link"))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	server := strings.NewReplacer("listen 80;", "listen "+addr+";", "/srv/mirror", dir).Replace(string(block))
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path %[1]s;
    proxy_temp_path %[1]s;
    fastcgi_temp_path %[1]s;
    uwsgi_temp_path %[1]s;
    scgi_temp_path %[1]s;
%[2]s
}
`, base, server)
	os.WriteFile(filepath.Join(base, "nginx.conf"), []byte(conf), 0o644)
	// master_process off: one process, so stopping it leaves no orphaned
	// worker behind (a killed master does not take its workers down).
	cmd := exec.Command(nginx, "-c", filepath.Join(base, "nginx.conf"), "-g", "daemon off; master_process off;")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	url := "http://" + addr
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i == 50 {
			t.Fatalf("nginx did not start: %s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	resp, body := get(t, url+"/tools/a.txt")
	if resp.StatusCode != 200 || string(body) != "one" || resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("nginx GET: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = get(t, url+"/debian/InRelease", "Range", "bytes=0-6")
	if resp.StatusCode != http.StatusPartialContent || string(body) != "release" {
		t.Fatalf("nginx Range: %d %q", resp.StatusCode, body)
	}
	for _, target := range []string{"/tools/link", "/../secret.txt", "/%2e%2e/secret.txt", "/tools/..%2f..%2f..%2fsecret.txt"} {
		code, body := raw(t, addr, target)
		if strings.Contains(body, "SECRET") || code == 200 {
			t.Errorf("nginx %s: %d %q", target, code, body)
		}
	}
	publish(t, dir, 2, map[string][]byte{"tools/a.txt": []byte("two")}, 3)
	if _, body := get(t, url+"/tools/a.txt"); string(body) != "two" {
		t.Fatalf("after the switch nginx serves %q", body)
	}
}
