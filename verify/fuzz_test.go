package verify

import (
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// addSeeds adds every fixture matching the globs and fails when there is
// none: a fuzz target without seeds would test little.
func addSeeds(f *testing.F, globs ...string) [][]byte {
	f.Helper()
	var all [][]byte
	for _, g := range globs {
		names, err := filepath.Glob(filepath.Join(fixtures, g))
		if err != nil {
			f.Fatal(err)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			all = append(all, b)
		}
	}
	if len(all) == 0 {
		f.Fatalf("no seeds for %v", globs)
	}
	return all
}

func FuzzParseTrust(f *testing.F) {
	addSeeds(f, "trust.toml")
	// Inline keys, so that mutations reach NewPolicy's checks cheaply.
	mini := bytes.Split(bytes.TrimSpace(readFixture(f, "minisign/mini1.pub")), []byte("\n"))[1]
	sshKey := bytes.TrimSpace(readFixture(f, "ssh/ed25519.pub"))
	f.Add([]byte("[[trust.key]]\nname = \"a\"\nminisign = \"" + string(mini) + "\"\nallow = [\"tools:**\", \"debian:lib[a-z]*\"]\nnot_after = 2027-01-01T00:00:00Z\n" +
		"[[trust.key]]\nname = \"b\"\nssh = \"" + string(sshKey) + "\"\nallow = [\"*\"]\nnamespace = \"file\"\nrevoked = 2026-01-01T00:00:00+01:00\n" +
		"[[trust.rule]]\npackages = [\"tools:critical/**\"]\nthreshold = 2\n"))
	// Key files resolve against an empty folder: file = fails fast.
	empty := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := ParseConfig("fuzz.toml", raw)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		p, err := NewPolicy(*cfg, empty)
		if err != nil {
			if p != nil {
				t.Fatal("policy returned with an error")
			}
			return
		}
		keys := p.Keys()
		if len(keys) == 0 {
			t.Fatal("a policy without keys")
		}
		for _, k := range keys {
			if k.Name == "" || len(k.Allow) == 0 || len(k.IDs) == 0 || k.Scheme == "" {
				t.Fatalf("incomplete key %+v", k)
			}
		}
		// Decoding is deterministic.
		again, err := ParseConfig("fuzz.toml", raw)
		if err != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}

func FuzzSSHSignature(f *testing.F) {
	addSeeds(f, "ssh/*.sig")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseSSHSig(data)
		if err != nil {
			if s != nil {
				t.Fatal("signature returned with an error")
			}
			return
		}
		// Round trip: what parses, marshals to something that parses the same.
		again, err := parseSSHSig(s.marshal())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !reflect.DeepEqual(normalizeSSH(s), normalizeSSH(again)) {
			t.Fatalf("round trip differs:\n%+v\n%+v", s, again)
		}
	})
}

func normalizeSSH(s *sshSig) sshSig {
	c := *s
	for _, b := range []*[]byte{&c.PublicKey, &c.Reserved, &c.Blob} {
		if len(*b) == 0 {
			*b = nil
		}
	}
	return c
}

func FuzzOpenPGPSignature(f *testing.F) {
	addSeeds(f, "openpgp/*.hello.txt.*", "openpgp/*.SHA256SUMS.asc")
	p := loadFixturePolicy(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Detached, armored or binary.
		sigs, err := readPGPSignatures(data)
		if err != nil {
			if sigs != nil {
				t.Fatal("signatures returned with an error")
			}
		} else {
			if len(sigs) == 0 || len(sigs) > MaxSignaturesPerFile {
				t.Fatalf("%d signatures", len(sigs))
			}
			var buf bytes.Buffer
			for _, s := range sigs {
				if err := s.Serialize(&buf); err != nil {
					return // go-crypto cannot re-serialize every parsable packet
				}
			}
			again, err := readPGPSignatures(buf.Bytes())
			if err != nil || len(again) != len(sigs) {
				t.Fatalf("round trip: %v, %d vs %d signatures", err, len(again), len(sigs))
			}
		}
		// Clearsigned.
		text, ev, err := p.VerifyClearsigned(context.Background(), data, now)
		if err != nil {
			if text != nil || ev != nil {
				t.Fatal("plaintext or evidence returned with an error")
			}
			return
		}
		if len(ev.Results) == 0 {
			t.Fatal("clearsigned document without results")
		}
		checkEvidence(t, p, ev)
	})
}

func FuzzVerify(f *testing.F) {
	addSeeds(f, "*/*.hello.txt.*")
	p := loadFixturePolicy(f)
	file := readFixture(f, "hello.txt")
	f.Fuzz(func(t *testing.T, sig []byte) {
		ev, err := p.Verify(context.Background(), bytes.NewReader(file), []Signature{{Name: "fuzz.sig", Data: sig}}, now)
		if err != nil {
			t.Fatalf("Verify errs only for I/O, got %v", err)
		}
		if len(ev.Results) == 0 {
			t.Fatal("no result for a signature")
		}
		checkEvidence(t, p, ev)
		// Verification is deterministic.
		ev2, err := p.Verify(context.Background(), bytes.NewReader(file), []Signature{{Name: "fuzz.sig", Data: sig}}, now)
		if err != nil || len(ev2.Results) != len(ev.Results) {
			t.Fatal("second verification differs")
		}
		for i := range ev.Results {
			if (ev.Results[i].Err == nil) != (ev2.Results[i].Err == nil) {
				t.Fatal("second verification differs")
			}
		}
	})
}

// checkEvidence: a valid result names a trusted key, a failed one carries a
// reason, and Decide agrees with the count of distinct passing keys.
func checkEvidence(t *testing.T, p *Policy, ev *Evidence) {
	t.Helper()
	valid := map[string]bool{}
	for _, r := range ev.Results {
		if r.Err == nil {
			if r.Key.Name == "" || p.byName(r.Key.Name) == nil {
				t.Fatalf("valid result without a trusted key: %+v", r)
			}
			valid[r.Key.Name] = true
		} else if r.Reason == "" || rankOf(r.Err) == len(rank) {
			t.Fatalf("failure without a known reason: %v", r.Err)
		}
	}
	for _, pkg := range []string{"tools:x", "tools:critical/x", "debian:x"} {
		v := p.Decide(pkg, ev)
		if v.Accepted != (len(v.Passed) >= v.Threshold) || (v.Accepted && v.Err != nil) || (!v.Accepted && v.Err == nil) {
			t.Fatalf("inconsistent verdict %+v", v)
		}
		if pkg == "debian:x" && v.Accepted {
			t.Fatal("accepted a package no key may sign")
		}
		if len(v.Passed) > len(valid) {
			t.Fatal("more passed keys than valid signatures")
		}
	}
}

// FuzzGlob checks the glob matcher against path.Match where their syntax
// agrees (no "**", no classes, not the lone "*").
func FuzzGlob(f *testing.F) {
	seeds := 0
	for _, c := range [][2]string{{"tools:hello/*", "tools:hello/x.tar.gz"}, {"debian:lib?", "debian:libc"}, {"tools:**/x", "tools:a/b/x"}, {"debian:\\*", "debian:*"}, {"tools:h*o/*.gz", "tools:hello/a.gz"}} {
		f.Add(c[0], c[1])
		seeds++
	}
	if seeds == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		g, err := parseGlob(pattern)
		if err != nil {
			if g != "" {
				t.Fatal("glob returned with an error")
			}
			return
		}
		got := g.match(name)
		if slow := g.matchSlow(name); pattern != "*" && slow != got {
			t.Fatalf("fast and general matchers disagree on %q, %q", pattern, name)
		}
		if pattern == "*" || strings.Contains(pattern, "**") || strings.Contains(pattern, "[") {
			if strings.Contains(pattern, "**") && !strings.Contains(pattern, "[") {
				// ** is at least as permissive as * in the same place.
				if ok, _ := path.Match(strings.ReplaceAll(pattern, "**", "*"), name); ok && !got {
					t.Fatalf("%q does not match %q though its single-star form does", pattern, name)
				}
			}
			return
		}
		want, _ := path.Match(pattern, name)
		if g.matchSlow(name) != want {
			t.Fatalf("match(%q, %q) = %v, path.Match = %v", pattern, name, got, want)
		}
	})
}
