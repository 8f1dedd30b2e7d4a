package serve

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirror-tool/mirror/mirror/repo"
)

var pathSeeds = []string{
	"/", "/tools/a.txt", "/tools/", "/tools", "/../secret.txt", "/tools/../../secret.txt", "/..\\secret.txt",
	"//secret.txt", "/tools/link", "/up/secret.txt", "/tools/a.txt\x00", "/./tools/./a.txt", "/tools//a.txt",
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range pathSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rel, ok := cleanPath(p)
		if !ok {
			if rel != "" {
				t.Fatal("path returned with a refusal")
			}
			return
		}
		if rel != "." && (!filepath.IsLocal(rel) || path.Clean(rel) != rel || strings.HasPrefix(rel, "/")) {
			t.Fatalf("cleanPath(%q) = %q: not a clean local path", p, rel)
		}
	})
}

// FuzzServePath: whatever the request path, the handler serves nothing
// from outside the generation (a secret beside it, a symlink planted in it).
func FuzzServePath(f *testing.F) {
	for _, s := range pathSeeds {
		f.Add(s)
	}
	dir := f.TempDir()
	publish(f, dir, 1, map[string][]byte{"tools/a.txt": []byte("public")}, 3)
	const secret = "SECRET-CONTENT"
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte(secret), 0o644)
	gen := repo.GenerationPath(dir, 1)
	os.Symlink(filepath.Join(dir, "secret.txt"), filepath.Join(gen, "tools", "link"))
	os.Symlink(dir, filepath.Join(gen, "up"))
	h := NewHandler(dir)
	f.Fuzz(func(t *testing.T, p string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, &http.Request{Method: http.MethodGet, URL: &url.URL{Path: p}, Header: http.Header{}})
		if strings.Contains(w.Body.String(), secret) || strings.Contains(w.Body.String(), "mirror-state") {
			t.Fatalf("%q leaked content from outside the generation (%d)", p, w.Code)
		}
		if w.Code == http.StatusOK && w.Body.String() != "public" && !strings.Contains(w.Body.String(), "<pre>") {
			t.Fatalf("%q: 200 with %q", p, w.Body.String())
		}
	})
}
