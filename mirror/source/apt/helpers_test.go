package apt

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/fetch"
	"github.com/mirror-tool/mirror/verify"
)

// fixtures returns fixtures/apt (made by scripts/gen-apt-fixtures).
func fixtures(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "fixtures", "apt")
	if _, err := os.Stat(filepath.Join(dir, "repo", "dists", "stable", "InRelease")); err != nil {
		t.Fatalf("fixtures/apt missing (run scripts/gen-apt-fixtures): %v", err)
	}
	return dir
}

// copyRepo copies fixtures/apt/repo to a temporary folder a test may
// tamper with.
func copyRepo(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	if out, err := exec.Command("cp", "-a", filepath.Join(fixtures(t), "repo"), dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

// serveDir serves root over loopback and returns a Getter using the real
// fetch client, and the number of requests seen.
func serveDir(t testing.TB, root string) (string, Getter, *int) {
	t.Helper()
	n := new(int)
	fs := http.FileServer(http.Dir(root))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*n++
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := fetch.New(fetch.Options{Retries: -1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	base := srv.URL + "/"
	get := func(ctx context.Context, req Request) ([]byte, error) {
		b, _, _, err := c.Get(ctx, base+req.Path, req.Max, fetch.Validators{})
		return b, err
	}
	return base, get, n
}

// policy builds a trust policy with the fixture keys: archive allowed for
// allowArchive, other allowed for "other:*".
func policy(t testing.TB, allowArchive ...string) *verify.Policy {
	t.Helper()
	dir := fixtures(t)
	var keys []verify.KeyConfig
	if len(allowArchive) > 0 {
		keys = append(keys, verify.KeyConfig{Name: "archive", File: filepath.Join(dir, "keys", "archive.asc"), Allow: allowArchive})
	}
	keys = append(keys, verify.KeyConfig{Name: "other", File: filepath.Join(dir, "keys", "other.asc"), Allow: []string{"other:*"}})
	p, err := verify.NewPolicy(verify.Config{Keys: keys}, dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testConfig(url string) *Config {
	return &Config{Name: "debian", Type: Type, URL: url, Suites: []string{"stable"}, Components: []string{"main"},
		Architectures: []string{"amd64"}, Packages: []string{"hello"}, WithDependencies: true}
}

func readFixture(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func removeFile(p string) error { return os.Remove(p) }
