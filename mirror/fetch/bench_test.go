package fetch

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/store"
)

// BenchmarkDownload fetches a set of files from a loopback server (Go's file
// server in this process, or nginx in its own with FETCH_BENCH_UPSTREAM=nginx,
// so that the server does not share the Go runtime with the client being
// measured) with a pool of 8 workers, and in the same run the
// same files with curl: one curl process per file under xargs -P8 (what a
// shell script does), and one curl process with --parallel --parallel-max 8
// (curl's best case). "mirror" hashes every byte; curl does not.
// "mirror+store" also moves each file into the content-addressed store
// (fsync, rename, fsync of the folder), which is what sync does.
//
//	go test -run='^$' -bench=BenchmarkDownload -benchtime=3x ./mirror/fetch/
//	scripts/bench/fetch.sh (several rounds, medians)
func BenchmarkDownload(b *testing.B) {
	for _, set := range []struct {
		n, size int
	}{{2000, 256 << 10}, {20000, 8 << 10}} {
		b.Run(fmt.Sprintf("%dx%dKiB", set.n, set.size>>10), func(b *testing.B) {
			src := b.TempDir()
			names := make([]string, set.n)
			for i := range names {
				names[i] = fmt.Sprintf("f%05d", i)
				if err := os.WriteFile(filepath.Join(src, names[i]), payload(set.size, uint64(i)), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			base := upstream(b, src)
			total := int64(set.n) * int64(set.size)
			report := func(b *testing.B) {
				b.ReportMetric(float64(set.n*b.N)/b.Elapsed().Seconds(), "files/s")
			}

			b.Run("mirror", func(b *testing.B) {
				benchPool(b, base, names, set.size, nil)
				report(b)
			})
			b.Run("mirror+store", func(b *testing.B) {
				st, err := store.Open(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				benchPool(b, base, names, set.size, st)
				report(b)
			})
			b.Run("curl-xargs-P8", func(b *testing.B) {
				curl := lookTool(b, "curl")
				b.SetBytes(total)
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					out := b.TempDir()
					var list strings.Builder
					for _, name := range names {
						fmt.Fprintf(&list, "%s %s/%s\n", filepath.Join(out, name), base, name)
					}
					cmd := exec.Command("xargs", "-P8", "-L1", curl, "-sf", "-o")
					cmd.Stdin = strings.NewReader(list.String())
					b.StartTimer()
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("curl: %v\n%s", err, out)
					}
					b.StopTimer()
					checkSizes(b, out, names, set.size)
					b.StartTimer()
				}
				report(b)
			})
			b.Run("curl-parallel", func(b *testing.B) {
				curl := lookTool(b, "curl")
				b.SetBytes(total)
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					out := b.TempDir()
					var conf strings.Builder
					for _, name := range names {
						fmt.Fprintf(&conf, "url = \"%s/%s\"\noutput = \"%s\"\n", base, name, filepath.Join(out, name))
					}
					cfg := filepath.Join(b.TempDir(), "curl.conf")
					if err := os.WriteFile(cfg, []byte(conf.String()), 0o644); err != nil {
						b.Fatal(err)
					}
					cmd := exec.Command(curl, "-sf", "--parallel", "--parallel-max", "8", "-K", cfg)
					b.StartTimer()
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("curl: %v\n%s", err, out)
					}
					b.StopTimer()
					checkSizes(b, out, names, set.size)
					b.StartTimer()
				}
				report(b)
			})
		})
	}
}

func benchPool(b *testing.B, base string, names []string, size int, st *store.Store) {
	c, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(names)) * int64(size))
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		out := b.TempDir()
		if st != nil {
			out = st.TempDir()
		}
		work := make(chan string)
		var wg sync.WaitGroup
		var once sync.Once
		var firstErr error
		b.StartTimer()
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for name := range work {
					dst := filepath.Join(out, fmt.Sprintf("%s.%d", name, i))
					res, err := c.Download(ctx, base+"/"+name, dst, int64(size), int64(size))
					if err == nil && st != nil {
						err = st.Adopt(dst, res.SHA256, res.Size)
					}
					if err != nil {
						once.Do(func() { firstErr = err })
					}
				}
			}()
		}
		for _, name := range names {
			work <- name
		}
		close(work)
		wg.Wait()
		b.StopTimer()
		if firstErr != nil {
			b.Fatal(firstErr)
		}
		if st == nil {
			os.RemoveAll(out)
		} else {
			n := 0
			st.Walk(func(string, int64) error { n++; return nil })
			if n != len(names) {
				b.Fatalf("store holds %d blobs, want %d", n, len(names))
			}
			st.Walk(func(sum string, _ int64) error { return st.Remove(sum) })
		}
		b.StartTimer()
	}
}

func lookTool(b testing.TB, name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		b.Fatalf("%s is needed for the comparison: %v", name, err)
	}
	return p
}

func checkSizes(b *testing.B, dir string, names []string, size int) {
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Size() != int64(size) {
			b.Fatalf("curl result %s: %v", name, err)
		}
	}
	os.RemoveAll(dir)
}

// upstream serves dir over loopback and returns its base URL.
func upstream(b *testing.B, dir string) string {
	if os.Getenv("FETCH_BENCH_UPSTREAM") != "nginx" {
		srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
		b.Cleanup(srv.Close)
		return srv.URL
	}
	return nginxUpstream(b, dir, "")
}

// nginxUpstream serves dir with nginx over loopback (extra: more directives
// for its http block) and returns the base URL; the server stops at the
// end of the test.
func nginxUpstream(b testing.TB, dir, extra string) string {
	nginx := lookTool(b, "nginx")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	prefix := b.TempDir()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must read the test's 0700 folders
	}
	conf := fmt.Sprintf(user+`
worker_processes 1;
error_log stderr;
pid %s/nginx.pid;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s;
	uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
	%s
	server { listen %s; root %s; }
}
`, prefix, extra, addr, dir)
	cf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", prefix, "-c", cf, "-g", "daemon off;")
	logf, err := os.Create(filepath.Join(prefix, "stderr"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// SIGQUIT: nginx's graceful stop, which takes the workers down too
	// (SIGKILL on the master would orphan them).
	b.Cleanup(func() { cmd.Process.Signal(syscall.SIGQUIT); cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i > 200 {
			b.Fatalf("nginx did not start on %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "http://" + addr
}
