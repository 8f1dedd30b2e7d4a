package fetch_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/fetch"
)

// stallAfterHeaders serves the status line and headers head to every request
// and then sends nothing more, holding the connection open.
func stallAfterHeaders(t *testing.T, head string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf)
				c.Write([]byte(head))
				<-done
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/x"
}

// An unwanted answer (an error status, or a size over the limit) whose body
// never comes must end the attempt after StallTimeout: reading it to reuse
// the connection once hung a sync until it was killed, holding its lock.
func TestStalledUnwantedBody(t *testing.T) {
	for _, tc := range []struct{ head, want string }{
		{"HTTP/1.1 404 Not Found\r\nContent-Length: 100\r\n\r\n", "404"},
		{"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100\r\n\r\n", "500"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n", "limit"},
	} {
		u := stallAfterHeaders(t, tc.head)
		c, err := fetch.New(fetch.Options{Timeout: 300 * time.Millisecond, StallTimeout: 300 * time.Millisecond, Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _, _, err = c.Get(ctx, u, 1000, fetch.Validators{})
		if ctx.Err() != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Get, answer %q: %v (caller's deadline reached: %v)", tc.head[:12], err, ctx.Err() != nil)
		}
		cancel()
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		_, err = c.Download(ctx, u, t.TempDir()+"/p", 1000, -1)
		if ctx.Err() != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Download, answer %q: %v (caller's deadline reached: %v)", tc.head[:12], err, ctx.Err() != nil)
		}
		var fe *fetch.Error
		if !errors.As(err, &fe) {
			t.Errorf("Download, answer %q: error %T, want *fetch.Error", tc.head[:12], err)
		}
		cancel()
	}
}
