package mirror

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/repo"
)

// TestSyncKeepsLastGoodOnRefusal: when a new version of a package is
// refused, the version verified before stays in the publish tree (by
// reference: its blobs were shipped already), so the inside goes on serving
// it, and import --recheck still verifies its signature with the carried
// trust file; the refused bytes never enter a bundle. A changed trust
// table, or a --full bundle (which would have to carry the old signature),
// lets the package drop out as before.
func TestSyncKeepsLastGoodOnRefusal(t *testing.T) {
	e, bundles := keptEnv(t)

	// Inside: both bundles import, the signatures are checked again with
	// the carried trust file, and a/one is still v1.
	inside := t.TempDir()
	if _, err := Import(context.Background(), ImportOptions{Repo: inside, Pub: e.pub, Recheck: true}, bundles); err != nil {
		t.Fatalf("import: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(inside, repo.CurrentLink, "tools/a/one.tar.gz")); err != nil || string(b) != "one v1" {
		t.Fatalf("inside serves %q (%v), want the last verified version", b, err)
	}

	// The next run meets the same refusal: kept again, nothing new.
	res := e.mustSync(SyncOptions{})
	if res.Rejected != 1 || !res.NothingNew || !strings.HasSuffix(rejectedOf(res)["tools:a/one.tar.gz"], keptNote) {
		t.Fatalf("third run: %d rejected, nothing new %v, %q", res.Rejected, res.NothingNew, rejectedOf(res)["tools:a/one.tar.gz"])
	}

	// --full would have to carry v1's signature, which only the bundles
	// hold: the package drops out of that bundle.
	res = e.mustSync(SyncOptions{Full: true})
	m, _ := e.openBundle(res.Bundle)
	if _, ok := treeOf(m)["tools/a/one.tar.gz"]; ok || strings.HasSuffix(rejectedOf(res)["tools:a/one.tar.gz"], keptNote) {
		t.Fatalf("--full kept the refused package: %q", rejectedOf(res)["tools:a/one.tar.gz"])
	}
}

// TestSyncKeptNeedsTheSameTrust: a changed trust table (rel-a's scope
// narrowed, as after a doubt about the key) no longer vouches for the old
// verdict: the refused package drops out.
func TestSyncKeptNeedsTheSameTrust(t *testing.T) {
	e, _ := keptEnv(t)
	raw, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	narrowed := strings.Replace(string(raw), `allow = ["tools:a/*"]`, `allow = ["tools:a/three.tar.gz"]`, 1)
	if narrowed == string(raw) {
		t.Fatal("the config has no rel-a scope to narrow")
	}
	if err := os.WriteFile(e.cfgPath, []byte(narrowed), 0o644); err != nil {
		t.Fatal(err)
	}
	e.put("b/two.tar.gz", "two v2", "rel-b")
	res := e.mustSync(SyncOptions{})
	if why := rejectedOf(res)["tools:a/one.tar.gz"]; why == "" || strings.HasSuffix(why, keptNote) {
		t.Fatalf("after the trust change: %q", why)
	}
	m, _ := e.openBundle(res.Bundle)
	if _, ok := treeOf(m)["tools/a/one.tar.gz"]; ok {
		t.Fatal("after the trust change the old verdict still publishes tools/a/one.tar.gz")
	}
}

// TestSyncKeptNeedsKeyInWindow: with the trust file unchanged, a key whose
// not_after or revoked date has passed no longer vouches for the version it
// passed: the package (now refused for the key's window) drops out of the
// tree instead of staying as accepted, and the inside's import --recheck
// accepts the chain.
func TestSyncKeptNeedsKeyInWindow(t *testing.T) {
	for _, field := range []string{"not_after", "revoked"} {
		t.Run(field, func(t *testing.T) {
			e := newSyncEnv(t)
			e.putRel("x.tar.gz", "x")
			e.sums("x.tar.gz")
			e.writeConfig(`files = ["v1/*.tar.gz"]`)
			raw, err := os.ReadFile(e.cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			dated := strings.Replace(string(raw), `allow = ["tools:a/*"]`, "allow = [\"tools:a/*\"]\n"+field+" = 2030-01-01T00:00:00Z", 1)
			if dated == string(raw) {
				t.Fatal("the config has no rel-a scope to date")
			}
			if err := os.WriteFile(e.cfgPath, []byte(dated), 0o644); err != nil {
				t.Fatal(err)
			}
			e.put("a/one.tar.gz", "one", "rel-a")
			e.put("b/two.tar.gz", "two", "rel-b")
			t0 := time.Date(2029, 12, 31, 0, 0, 0, 0, time.UTC)
			res := e.mustSync(SyncOptions{Now: func() time.Time { return t0 }})
			if res.Rejected != 0 || res.Bundle == nil {
				t.Fatalf("first run: %+v", res)
			}
			bundles := []string{res.Bundle.Path}

			// rel-a's date passes; b/two changes, so a bundle is made.
			e.put("b/two.tar.gz", "two v2", "rel-b")
			t1 := t0.Add(48 * time.Hour)
			res = e.mustSync(SyncOptions{Now: func() time.Time { return t1 }})
			why := rejectedOf(res)["tools:a/one.tar.gz"]
			if why == "" || strings.HasSuffix(why, keptNote) {
				t.Fatalf("after rel-a's %s: tools:a/one.tar.gz %q, want refused and not kept", field, why)
			}
			m, _ := e.openBundle(res.Bundle)
			if sum, ok := treeOf(m)["tools/a/one.tar.gz"]; ok {
				t.Fatalf("after rel-a's %s, tools/a/one.tar.gz is still in the publish tree (%s)", field, sum)
			}
			for _, p := range m.Packages {
				if p.Name == "a/one.tar.gz" {
					t.Fatalf("the manifest lists tools:a/one.tar.gz as accepted (keys %v)", p.Keys)
				}
			}
			bundles = append(bundles, res.Bundle.Path)
			now := func() time.Time { return t1.Add(time.Hour) }
			if _, err := Import(context.Background(), ImportOptions{Repo: t.TempDir(), Pub: e.pub, Recheck: true, Now: now}, bundles); err != nil {
				t.Fatalf("import --recheck of the chain: %v", err)
			}
		})
	}
}

// keptEnv syncs a/one v1, then refuses its v2 (signed by rel-b, which may
// not sign tools:a/*) in a run that makes a bundle, checks that bundle, and
// returns the env and the two bundles.
func keptEnv(t *testing.T) (*syncEnv, []string) {
	t.Helper()
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.put("a/one.tar.gz", "one v1", "rel-a")
	e.put("b/two.tar.gz", "two", "rel-b")
	res := e.mustSync(SyncOptions{})
	if res.Rejected != 0 || res.Bundle == nil {
		t.Fatalf("first run: %+v", res)
	}
	bundles := []string{res.Bundle.Path}
	e.put("a/one.tar.gz", "one v2 EVIL", "rel-b")
	e.put("a/three.tar.gz", "three", "rel-a")
	res = e.mustSync(SyncOptions{})
	why := rejectedOf(res)["tools:a/one.tar.gz"]
	if res.Rejected != 1 || !strings.Contains(why, "not allowed") || !strings.HasSuffix(why, keptNote) || res.Bundle == nil {
		t.Fatalf("second run: %d rejected (%q), bundle %v", res.Rejected, why, res.Bundle)
	}
	m, blobs := e.openBundle(res.Bundle)
	if got := treeOf(m)["tools/a/one.tar.gz"]; got != sumOf("one v1") {
		t.Fatalf("publish tree: tools/a/one.tar.gz is %s, want the last verified version %s", got, sumOf("one v1"))
	}
	if _, ok := blobs[sumOf("one v2 EVIL")]; ok {
		t.Fatal("the refused version is in the bundle")
	}
	if _, ok := blobs[sumOf("one v1")]; ok {
		t.Fatal("the kept version was carried again: it was shipped before")
	}
	if len(m.Rejected) != 1 || m.Rejected[0].Name != "a/one.tar.gz" {
		t.Fatalf("manifest rejects %+v", m.Rejected)
	}
	return e, append(bundles, res.Bundle.Path)
}

// TestSyncRefusesUnservablePath: a package whose publish path no import
// could serve (a colon, as in a timestamped upstream file name) is refused
// by name at sync, instead of making every bundle from then on one that
// import refuses; the rest is bundled and imports.
func TestSyncRefusesUnservablePath(t *testing.T) {
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.put("a/one-2026-01-01T00:00:00Z.tar.gz", "one", "rel-a")
	e.put("b/two.tar.gz", "two", "rel-b")
	res := e.mustSync(SyncOptions{})
	why := rejectedOf(res)["tools:a/one-2026-01-01T00:00:00Z.tar.gz"]
	if res.Rejected != 1 || !strings.Contains(why, "cannot be served") || !strings.Contains(why, "colon") {
		t.Fatalf("rejected %v, want the colon path refused", rejectedOf(res))
	}
	m, _ := e.openBundle(res.Bundle)
	if _, ok := treeOf(m)["tools/b/two.tar.gz"]; !ok {
		t.Fatal("the servable package is not in the bundle")
	}
	if _, err := Import(context.Background(), ImportOptions{Repo: t.TempDir(), Pub: e.pub}, []string{res.Bundle.Path}); err != nil {
		t.Fatalf("import: %v", err)
	}
}

// TestSyncCaseVariantRefused: a name that differs from an accepted one only
// in case (an upstream adding "a/ONE.tar.gz" beside "a/one.tar.gz") would
// make a tree no import can serve. The newcomer is refused by name, the
// package accepted before stays, and the run does not fail.
func TestSyncCaseVariantRefused(t *testing.T) {
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.put("a/one.tar.gz", "one", "rel-a")
	e.put("b/two.tar.gz", "two", "rel-b")
	first := e.mustSync(SyncOptions{})
	e.put("a/ONE.tar.gz", "variant", "rel-a") // sorts before a/one.tar.gz
	e.put("b/two.tar.gz", "two v2", "rel-b")  // so that a bundle is made
	res := e.mustSync(SyncOptions{})
	rej := rejectedOf(res)
	if why := rej["tools:a/ONE.tar.gz"]; !strings.Contains(why, "when case is ignored") {
		t.Fatalf("the case variant: %q (rejected %v)", why, rej)
	}
	if why, ok := rej["tools:a/one.tar.gz"]; ok {
		t.Fatalf("the package accepted before was refused: %q", why)
	}
	m, _ := e.openBundle(res.Bundle)
	if treeOf(m)["tools/a/one.tar.gz"] != sumOf("one") {
		t.Fatal("tools/a/one.tar.gz is not in the publish tree")
	}
	if _, err := Import(context.Background(), ImportOptions{Repo: t.TempDir(), Pub: e.pub}, []string{first.Bundle.Path, res.Bundle.Path}); err != nil {
		t.Fatalf("import: %v", err)
	}
}
