package fetch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mirror-tool/mirror/mirror/fetch"
)

func ExampleClient_Download() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "hello.tar.gz", time.Time{}, strings.NewReader("hello"))
	}))
	defer upstream.Close()
	dir, _ := os.MkdirTemp("", "fetch-example")
	defer os.RemoveAll(dir)

	c, err := fetch.New(fetch.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The size limit comes from the configuration or the signed index.
	res, err := c.Download(context.Background(), upstream.URL+"/hello.tar.gz", filepath.Join(dir, "part"), 1<<20, -1)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The caller compares res.SHA256 with the signed index (or verifies the
	// signature) before store.Adopt makes the file visible.
	fmt.Println(res.SHA256, res.Size)
	// Output:
	// 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 5
}

func ExampleClient_Get() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "SHA256SUMS content")
	}))
	defer upstream.Close()
	c, _ := fetch.New(fetch.Options{})
	ctx := context.Background()
	body, v, _, _ := c.Get(ctx, upstream.URL+"/SHA256SUMS", 1<<20, fetch.Validators{})
	fmt.Printf("%q %s\n", body, v.ETag)
	// Next run: the validators kept in the state make it a cheap 304.
	body, _, notModified, _ := c.Get(ctx, upstream.URL+"/SHA256SUMS", 1<<20, v)
	fmt.Println(len(body), notModified)
	// Output:
	// "SHA256SUMS content" "v1"
	// 0 true
}
