package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/internal/minisign"
)

const fixtures = "../fixtures/verify"

// now is the injected clock of the tests: after every fixture signature
// (2025-06-01), after the expired key's expiry (2020-12-31) and the revocations
// (2025-09-01).
var now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadFixturePolicy(t testing.TB) *Policy {
	t.Helper()
	p, raw, err := LoadTrustFile(filepath.Join(fixtures, "trust.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 {
		t.Fatal("LoadTrustFile returned no raw bytes")
	}
	return p
}

func sigs(t testing.TB, names ...string) []Signature {
	t.Helper()
	var out []Signature
	for _, n := range names {
		out = append(out, Signature{Name: filepath.Base(n), Data: readFixture(t, n)})
	}
	return out
}

// tamperPGP flips a bit in the last byte of a binary OpenPGP signature (in
// the signature value).
func tamperPGP(t testing.TB, name string) []byte {
	b := readFixture(t, name)
	b[len(b)-1] ^= 0x01
	return b
}

// tamperMinisign flips a bit in the signature value of a minisign file.
func tamperMinisign(t testing.TB, name string) []byte {
	s, err := minisign.ParseSignature(readFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	s.Sig[5] ^= 0x01
	return s.Marshal()
}

// tamperSSH flips a bit in the signature value of an SSHSIG file.
func tamperSSH(t testing.TB, name string) []byte {
	s, err := parseSSHSig(readFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	s.Blob[len(s.Blob)-3] ^= 0x01
	return s.marshal()
}

type verifyCase struct {
	name    string
	file    string // fixture signed file
	sigs    []Signature
	pkg     string
	wantErr error // nil: accepted
	at      time.Time
	phrase  string // in the rejection's reason, when set
}

func TestCheckFixtures(t *testing.T) {
	p := loadFixturePolicy(t)
	var cases []verifyCase
	add := func(c verifyCase) {
		if c.file == "" {
			c.file = "hello.txt"
		}
		if c.pkg == "" {
			c.pkg = "tools:hello/hello.txt"
		}
		cases = append(cases, c)
	}
	// OpenPGP: every key type, armored and binary, valid / tampered file /
	// tampered signature / out of scope.
	for _, k := range []string{"rsa2048", "rsa3072", "rsa4096", "ed25519", "p256", "p384", "subkey"} {
		for _, ext := range []string{"asc", "sig"} {
			sig := "openpgp/" + k + ".hello.txt." + ext
			add(verifyCase{name: k + "/" + ext + "/valid", sigs: sigs(t, sig)})
			add(verifyCase{name: k + "/" + ext + "/tampered-file", file: "hello.txt.tampered", sigs: sigs(t, sig), wantErr: ErrBadSignature})
			add(verifyCase{name: k + "/" + ext + "/out-of-scope", sigs: sigs(t, sig), pkg: "debian:jq", wantErr: ErrNotAllowed})
		}
		add(verifyCase{name: k + "/tampered-sig", sigs: []Signature{{Name: "t.sig", Data: tamperPGP(t, "openpgp/"+k+".hello.txt.sig")}}, wantErr: ErrBadSignature})
		add(verifyCase{name: k + "/other-file", file: "bench-8k.bin", sigs: sigs(t, "openpgp/"+k+".hello.txt.sig"), wantErr: ErrBadSignature})
	}
	for _, ext := range []string{"asc", "sig"} {
		add(verifyCase{name: "expired/" + ext, sigs: sigs(t, "openpgp/expired.hello.txt."+ext), wantErr: ErrKeyExpired})
		add(verifyCase{name: "revoked/" + ext, sigs: sigs(t, "openpgp/revoked.hello.txt."+ext), wantErr: ErrKeyRevoked})
		add(verifyCase{name: "revoked-subkey/" + ext, sigs: sigs(t, "openpgp/revsub.hello.txt."+ext), wantErr: ErrKeyRevoked})
		add(verifyCase{name: "signature-before-key/" + ext, sigs: sigs(t, "openpgp/early.hello.txt."+ext), wantErr: ErrKeyNotYetValid})
	}
	// The expired key was valid when it signed and when "now" is in 2020.
	add(verifyCase{name: "expired/valid-in-2020", sigs: sigs(t, "openpgp/expired.hello.txt.sig"), at: time.Date(2020, 7, 1, 0, 0, 0, 0, time.UTC)})
	// Before the revocation (2025-09-01) the revoked key was fine.
	add(verifyCase{name: "revoked/before-revocation", sigs: sigs(t, "openpgp/revsub.hello.txt.sig"), at: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)})
	// A signature dated after now (the clock is wrong, or the signature is forged for later).
	add(verifyCase{name: "signature-from-the-future", sigs: sigs(t, "openpgp/ed25519.hello.txt.sig"), at: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), wantErr: ErrSignatureExpired})
	add(verifyCase{name: "signature-and-key-from-the-future", sigs: sigs(t, "openpgp/ed25519.hello.txt.sig"), at: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), wantErr: ErrSignatureExpired})
	add(verifyCase{name: "sha1", sigs: sigs(t, "openpgp/weak.hello.txt.sha1.sig"), wantErr: ErrUnsupported})
	add(verifyCase{name: "md5", sigs: sigs(t, "openpgp/weak.hello.txt.md5.sig"), wantErr: ErrUnsupported})
	add(verifyCase{name: "rsa1024", sigs: sigs(t, "openpgp/small.hello.txt.sig"), wantErr: ErrUnsupported})
	add(verifyCase{name: "dsa", sigs: sigs(t, "openpgp/dsa.hello.txt.sig"), wantErr: ErrUnsupported})
	add(verifyCase{name: "clearsigned-as-detached", sigs: sigs(t, "openpgp/ed25519.SHA256SUMS.asc"), wantErr: ErrMalformed})

	// minisign: prehashed and legacy.
	for _, k := range []string{"mini1", "mini2"} {
		for _, form := range []string{"minisig", "legacy.minisig"} {
			sig := "minisign/" + k + ".hello.txt." + form
			add(verifyCase{name: k + "/" + form + "/valid", sigs: sigs(t, sig)})
			add(verifyCase{name: k + "/" + form + "/tampered-file", file: "hello.txt.tampered", sigs: sigs(t, sig), wantErr: ErrBadSignature})
			add(verifyCase{name: k + "/" + form + "/tampered-sig", sigs: []Signature{{Name: "t.minisig", Data: tamperMinisign(t, sig)}}, wantErr: ErrBadSignature})
			add(verifyCase{name: k + "/" + form + "/out-of-scope", sigs: sigs(t, sig), pkg: "debian:jq", wantErr: ErrNotAllowed})
		}
	}
	// The trusted comment is covered by the global signature.
	forged := bytes.Replace(readFixture(t, "minisign/mini1.hello.txt.minisig"), []byte("signed by mini1"), []byte("signed by mini2"), 1)
	add(verifyCase{name: "mini1/forged-trusted-comment", sigs: []Signature{{Name: "f.minisig", Data: forged}}, wantErr: ErrBadSignature})

	// SSH: every key type.
	for _, k := range []string{"ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa"} {
		sig := "ssh/" + k + ".hello.txt.sig"
		add(verifyCase{name: "ssh-" + k + "/valid", sigs: sigs(t, sig)})
		add(verifyCase{name: "ssh-" + k + "/tampered-file", file: "hello.txt.tampered", sigs: sigs(t, sig), wantErr: ErrBadSignature})
		add(verifyCase{name: "ssh-" + k + "/tampered-sig", sigs: []Signature{{Name: "t.sig", Data: tamperSSH(t, sig)}}, wantErr: ErrBadSignature})
		add(verifyCase{name: "ssh-" + k + "/out-of-scope", sigs: sigs(t, sig), pkg: "debian:jq", wantErr: ErrNotAllowed})
	}
	add(verifyCase{name: "ssh-ed25519/sha256", sigs: sigs(t, "ssh/ed25519.hello.txt.sha256.sig")})
	add(verifyCase{name: "ssh-rsa/rsa-sha2-256", sigs: sigs(t, "ssh/rsa.hello.txt.sha256.sig")})
	sshRSA1, err := parseSSHSig(readFixture(t, "ssh/rsa.hello.txt.sig"))
	if err != nil {
		t.Fatal(err)
	}
	sshRSA1.Format = "ssh-rsa" // SHA-1
	add(verifyCase{name: "ssh-rsa/sha1-format", sigs: []Signature{{Name: "sha1.sig", Data: sshRSA1.marshal()}}, wantErr: ErrUnsupported})
	sshMD5, err := parseSSHSig(readFixture(t, "ssh/ed25519.hello.txt.sig"))
	if err != nil {
		t.Fatal(err)
	}
	sshMD5.HashAlg = "sha1"
	add(verifyCase{name: "ssh/sha1-hash", sigs: []Signature{{Name: "sha1.sig", Data: sshMD5.marshal()}}, wantErr: ErrUnsupported})
	add(verifyCase{name: "ssh/wrong-namespace", sigs: sigs(t, "ssh/ed25519.hello.txt.other-namespace.sig"), wantErr: ErrBadSignature})

	// Thresholds: tools:critical/** needs two distinct keys.
	crit := "tools:critical/hello"
	add(verifyCase{name: "threshold/met-two-schemes", pkg: crit, sigs: sigs(t, "openpgp/rsa2048.hello.txt.asc", "minisign/mini1.hello.txt.minisig")})
	add(verifyCase{name: "threshold/met-one-file-two-signatures", pkg: crit, sigs: sigs(t, "openpgp/two.hello.txt.sig")})
	add(verifyCase{name: "threshold/unmet-one-key", pkg: crit, sigs: sigs(t, "ssh/ed25519.hello.txt.sig"), wantErr: ErrThreshold})
	add(verifyCase{name: "threshold/unmet-same-key-twice", pkg: crit, sigs: sigs(t, "minisign/mini1.hello.txt.minisig", "minisign/mini1.hello.txt.legacy.minisig"), wantErr: ErrThreshold})
	add(verifyCase{name: "threshold/unmet-same-key-two-forms", pkg: crit, sigs: sigs(t, "openpgp/subkey.hello.txt.sig", "openpgp/subkey.hello.txt.asc"), wantErr: ErrThreshold})
	add(verifyCase{name: "threshold/unmet-second-is-bad", pkg: crit, sigs: []Signature{sigs(t, "ssh/rsa.hello.txt.sig")[0], {Name: "t.minisig", Data: tamperMinisign(t, "minisign/mini2.hello.txt.minisig")}}, wantErr: ErrThreshold,
		phrase: "not counted: signature t.minisig"})
	add(verifyCase{name: "threshold/not-needed-elsewhere", sigs: sigs(t, "openpgp/two.hello.txt.sig", "minisign/mini1.hello.txt.minisig")})
	// One good signature among bad ones is enough when the threshold is 1.
	add(verifyCase{name: "one-good-among-bad", sigs: append(sigs(t, "openpgp/weak.hello.txt.sha1.sig", "openpgp/revoked.hello.txt.sig"), sigs(t, "ssh/rsa.hello.txt.sig")...)})
	add(verifyCase{name: "no-signatures", wantErr: ErrThreshold})
	add(verifyCase{name: "garbage", sigs: []Signature{{Name: "g.sig", Data: []byte("hello")}}, wantErr: ErrMalformed})
	add(verifyCase{name: "bad-package-name", pkg: "nocolon", sigs: sigs(t, "ssh/rsa.hello.txt.sig"), wantErr: ErrMalformed})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			at := now
			if !c.at.IsZero() {
				at = c.at
			}
			v, err := p.Check(context.Background(), c.pkg, bytes.NewReader(readFixture(t, c.file)), c.sigs, at)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if c.wantErr == nil {
				if !v.Accepted || v.Err != nil || len(v.Passed) == 0 {
					t.Fatalf("want accepted, got:\n%s", v)
				}
				return
			}
			if v.Accepted {
				t.Fatalf("want rejected with %v, got accepted:\n%s", c.wantErr, v)
			}
			if !errors.Is(v.Err, c.wantErr) {
				t.Fatalf("want %v, got %v\n%s", c.wantErr, v.Err, v)
			}
			if v.Reason == "" || !strings.Contains(v.String(), "rejected") {
				t.Fatalf("verdict does not explain itself: %q / %q", v.Reason, v.String())
			}
			if !strings.Contains(v.Reason, c.phrase) {
				t.Fatalf("reason %q does not say %q", v.Reason, c.phrase)
			}
			if c.pkg != "nocolon" && !strings.Contains(v.Err.Error(), c.pkg) {
				t.Errorf("message does not name the package %s: %v", c.pkg, v.Err)
			}
		})
	}
}

// TestErrorTypes checks the typed errors carry their data.
func TestErrorTypes(t *testing.T) {
	p := loadFixturePolicy(t)
	ev, err := p.Verify(context.Background(), bytes.NewReader(readFixture(t, "hello.txt")),
		sigs(t, "openpgp/subkey.hello.txt.sig", "openpgp/expired.hello.txt.sig"), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Results) != 2 || ev.Results[0].Err != nil {
		t.Fatalf("results: %+v", ev.Results)
	}
	ref := ev.Results[0].Key
	if ref.Name != "pgp-subkey" || ref.Scheme != SchemeOpenPGP || ref.ID == "" || ref.Subkey == "" || ref.Subkey == ref.ID {
		t.Fatalf("subkey ref: %+v", ref)
	}
	var se *SignatureError
	if !errors.As(ev.Results[1].Err, &se) || se.Key.Name != "pgp-expired" || se.Signature != "expired.hello.txt.sig" || !errors.Is(se, ErrKeyExpired) {
		t.Fatalf("expired: %#v", ev.Results[1].Err)
	}

	v := p.Decide("tools:critical/x", ev)
	var te *ThresholdError
	if !errors.As(v.Err, &te) || te.Need != 2 || te.Have != 1 || te.Package != "tools:critical/x" || len(te.Keys) != 1 || te.Keys[0] != "pgp-subkey" {
		t.Fatalf("threshold: %#v", v.Err)
	}
	if len(v.Failures) != 1 || !errors.Is(v.Failures[0].Err, ErrKeyExpired) {
		t.Fatalf("failures: %+v", v.Failures)
	}

	v = p.Decide("debian:jq", ev)
	var na *NotAllowedError
	if !errors.As(v.Err, &na) || na.Key.Name != "pgp-subkey" || na.Package != "debian:jq" {
		t.Fatalf("not allowed: %#v", v.Err)
	}
	want := `key "pgp-subkey" is not allowed to sign debian:jq`
	if !strings.Contains(v.Err.Error(), want) || !strings.Contains(v.Err.Error(), "allow list") {
		t.Fatalf("message %q lacks %q and a hint", v.Err, want)
	}
}

// TestWrongKey: a valid signature by a key the policy does not hold.
func TestWrongKey(t *testing.T) {
	cfg := Config{Keys: []KeyConfig{
		{Name: "only-mini2", File: "minisign/mini2.pub", Allow: []string{"*"}},
		{Name: "only-p256", File: "openpgp/p256.asc", Allow: []string{"*"}},
		{Name: "only-ecdsa", File: "ssh/ecdsa256.pub", Allow: []string{"*"}},
	}}
	p, err := NewPolicy(cfg, fixtures)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"minisign/mini1.hello.txt.minisig", "openpgp/ed25519.hello.txt.asc", "openpgp/subkey.hello.txt.sig", "ssh/ed25519.hello.txt.sig"} {
		v, err := p.Check(context.Background(), "tools:x", bytes.NewReader(readFixture(t, "hello.txt")), sigs(t, s), now)
		if err != nil {
			t.Fatal(err)
		}
		if v.Accepted || !errors.Is(v.Err, ErrUnknownKey) || !strings.Contains(v.Err.Error(), "not in the trust file") {
			t.Errorf("%s: want unknown key, got %v", s, v.Err)
		}
	}
}

// TestTrustWindow checks not_before, not_after and revoked of the trust
// file against now, for every scheme.
func TestTrustWindow(t *testing.T) {
	d := func(y int, m time.Month) *time.Time { x := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC); return &x }
	for _, c := range []struct {
		name                string
		notBefore, notAfter *time.Time
		revoked             *time.Time
		want                error
	}{
		{"inside", d(2025, 1), d(2027, 1), nil, nil},
		{"after-not-after", nil, d(2025, 12), nil, ErrKeyExpired},
		{"before-not-before", d(2026, 2), nil, nil, ErrKeyNotYetValid},
		{"revoked", nil, nil, d(2025, 12), ErrKeyRevoked},
		{"revocation-later", nil, nil, d(2026, 2), nil},
	} {
		for _, k := range []struct{ file, sig string }{
			{"minisign/mini1.pub", "minisign/mini1.hello.txt.minisig"},
			{"ssh/rsa.pub", "ssh/rsa.hello.txt.sig"},
			{"openpgp/p384.asc", "openpgp/p384.hello.txt.asc"},
		} {
			t.Run(c.name+"/"+k.file, func(t *testing.T) {
				p, err := NewPolicy(Config{Keys: []KeyConfig{{Name: "k", File: k.file, Allow: []string{"tools:*"},
					NotBefore: c.notBefore, NotAfter: c.notAfter, Revoked: c.revoked}}}, fixtures)
				if err != nil {
					t.Fatal(err)
				}
				v, err := p.Check(context.Background(), "tools:x", bytes.NewReader(readFixture(t, "hello.txt")), sigs(t, k.sig), now)
				if err != nil {
					t.Fatal(err)
				}
				if c.want == nil && !v.Accepted {
					t.Fatalf("want accepted: %s", v)
				}
				if c.want != nil && (v.Accepted || !errors.Is(v.Err, c.want)) {
					t.Fatalf("want %v: %s", c.want, v)
				}
			})
		}
	}
}

// TestInlineKeys: minisign, ssh and openpgp keys given inline in the
// config behave as the same keys given by file.
func TestInlineKeys(t *testing.T) {
	mini := strings.Split(strings.TrimSpace(string(readFixture(t, "minisign/mini2.pub"))), "\n")[1]
	cfg := Config{Keys: []KeyConfig{
		{Name: "m", Minisign: mini, Allow: []string{"tools:a"}},
		{Name: "s", SSH: string(readFixture(t, "ssh/ecdsa384.pub")), Allow: []string{"tools:a"}},
		{Name: "o", OpenPGP: string(readFixture(t, "openpgp/rsa3072.asc")), Allow: []string{"tools:a"}},
	}, Rules: []RuleConfig{{Packages: []string{"tools:a"}, Threshold: 3}}}
	p, err := NewPolicy(cfg, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Check(context.Background(), "tools:a", bytes.NewReader(readFixture(t, "hello.txt")),
		sigs(t, "minisign/mini2.hello.txt.minisig", "ssh/ecdsa384.hello.txt.sig", "openpgp/rsa3072.hello.txt.asc"), now)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Accepted || len(v.Passed) != 3 {
		t.Fatalf("want 3 of 3:\n%s", v)
	}
	keys := p.Keys()
	if len(keys) != 3 || keys[0].Scheme != SchemeMinisign || keys[1].Scheme != SchemeSSH || keys[1].Namespace != "file" || keys[2].Scheme != SchemeOpenPGP || len(keys[2].IDs) == 0 {
		t.Fatalf("Keys: %+v", keys)
	}
}

// TestTeamKeyring: one entry whose file holds two OpenPGP keys counts as one
// key for thresholds.
func TestTeamKeyring(t *testing.T) {
	p, err := NewPolicy(Config{
		Keys:  []KeyConfig{{Name: "team", File: "openpgp/team.asc", Allow: []string{"tools:**"}}, {Name: "m", File: "minisign/mini1.pub", Allow: []string{"tools:**"}}},
		Rules: []RuleConfig{{Packages: []string{"tools:**"}, Threshold: 2}},
	}, fixtures)
	if err != nil {
		t.Fatal(err)
	}
	if ids := p.Keys()[0].IDs; len(ids) != 2 {
		t.Fatalf("team keyring ids: %v", ids)
	}
	check := func(names ...string) Verdict {
		v, err := p.Check(context.Background(), "tools:x", bytes.NewReader(readFixture(t, "hello.txt")), sigs(t, names...), now)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := check("openpgp/two.hello.txt.sig"); v.Accepted || !errors.Is(v.Err, ErrThreshold) {
		t.Fatalf("two keys of one entry must count once:\n%s", v)
	}
	if v := check("openpgp/two.hello.txt.sig", "minisign/mini1.hello.txt.minisig"); !v.Accepted {
		t.Fatalf("team + minisign:\n%s", v)
	}
}

// TestClearsigned checks SHA256SUMS.asc made by gpg --clearsign.
func TestClearsigned(t *testing.T) {
	p := loadFixturePolicy(t)
	want := readFixture(t, "SHA256SUMS")
	for _, k := range []string{"rsa2048", "rsa4096", "ed25519", "p256", "p384", "subkey"} {
		doc := readFixture(t, "openpgp/"+k+".SHA256SUMS.asc")
		text, ev, err := p.VerifyClearsigned(context.Background(), doc, now)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if !bytes.Equal(bytes.TrimRight(text, "\n"), bytes.TrimRight(want, "\n")) {
			t.Fatalf("%s: plaintext %q", k, text)
		}
		// Decide per listed file, as sync does for a checksum list.
		if v := p.Decide("tools:hello-2.12.tar.gz", ev); !v.Accepted {
			t.Fatalf("%s: %s", k, v)
		}
		if v := p.Decide("debian:hello", ev); v.Accepted || !errors.Is(v.Err, ErrNotAllowed) {
			t.Fatalf("%s: out of scope accepted: %s", k, v)
		}
		// A changed checksum breaks the signature.
		bad := bytes.Replace(doc, []byte("f2ca1bb6"), []byte("f2ca1bb7"), 1)
		text, v, err := p.CheckClearsigned(context.Background(), "tools:hello-2.12.tar.gz", bad, now)
		if err != nil || v.Accepted || text != nil || !errors.Is(v.Err, ErrBadSignature) {
			t.Fatalf("%s: tampered: %q %v %s", k, text, err, v)
		}
		// Text outside the signed block is refused, also a fake block in
		// front whose BEGIN line is not at a line start (the decoder skips
		// it and takes the real block after it; gpg --verify says "Good").
		fake := []byte("\t-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" +
			"0000000000000000000000000000000000000000000000000000000000000000  hello-2.12.tar.gz\n")
		for _, extra := range [][]byte{append([]byte("unsigned\n"), doc...), append(bytes.Clone(doc), "unsigned\n"...), append(fake, doc...)} {
			if _, _, err := p.VerifyClearsigned(context.Background(), extra, now); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: extra text %.20q...: %v", k, extra, err)
			}
		}
		// White space before the block is no text.
		if _, _, err := p.VerifyClearsigned(context.Background(), append([]byte(" \n\n"), doc...), now); err != nil {
			t.Fatalf("%s: white space before the block: %v", k, err)
		}
	}
	for _, k := range []string{"expired", "revoked"} {
		_, v, err := p.CheckClearsigned(context.Background(), "tools:x", readFixture(t, "openpgp/"+k+".SHA256SUMS.asc"), now)
		if err != nil || v.Accepted {
			t.Fatalf("%s: %v %s", k, err, v)
		}
	}
	if _, _, err := p.VerifyClearsigned(context.Background(), readFixture(t, "hello.txt"), now); !errors.Is(err, ErrMalformed) {
		t.Fatalf("not clearsigned: %v", err)
	}
	big := make([]byte, MaxClearsignedSize+1)
	if _, _, err := p.VerifyClearsigned(context.Background(), big, now); !errors.Is(err, ErrMalformed) {
		t.Fatalf("too big: %v", err)
	}
}

// countingReader counts reads and bytes, to show the file is read once.
type countingReader struct {
	r     io.Reader
	n     int64
	calls int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.calls++
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestReadOnceConstantMemory verifies a 64 MiB stream with signatures of
// every scheme: the bytes are read once and the allocation does not grow
// with the file. (The signatures do not match these bytes; what is measured
// is the reading.)
func TestReadOnceConstantMemory(t *testing.T) {
	p := loadFixturePolicy(t)
	all := sigs(t, "openpgp/rsa2048.hello.txt.sig", "openpgp/ed25519.hello.txt.asc", "openpgp/two.hello.txt.sig",
		"minisign/mini1.hello.txt.minisig", "minisign/mini2.hello.txt.legacy.minisig", "ssh/ed25519.hello.txt.sig", "ssh/rsa.hello.txt.sha256.sig")
	measure := func(size int64) (uint64, *countingReader) {
		cr := &countingReader{r: io.LimitReader(zeros{}, size)}
		var before, after runtimeMem
		before.read()
		ev, err := p.Verify(context.Background(), cr, all, now)
		after.read()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ev.Results {
			if !errors.Is(r.Err, ErrBadSignature) {
				t.Fatalf("%s: %v", r.Signature, r.Err)
			}
		}
		return after.total - before.total, cr
	}
	// Valid signatures of all three schemes over one pass of a plain
	// io.Reader (no Seek, no ReaderAt): every one passes.
	valid := sigs(t, "openpgp/two.hello.txt.sig", "openpgp/p384.hello.txt.asc", "minisign/mini1.hello.txt.minisig",
		"minisign/mini2.hello.txt.legacy.minisig", "ssh/ed25519.hello.txt.sig", "ssh/rsa.hello.txt.sha256.sig")
	cr := &countingReader{r: io.MultiReader(bytes.NewReader(readFixture(t, "hello.txt")))}
	ev, err := p.Verify(context.Background(), cr, valid, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ev.Results {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Signature, r.Err)
		}
	}
	if len(ev.Results) != 7 || cr.n != int64(len(readFixture(t, "hello.txt"))) {
		t.Fatalf("%d results, %d bytes read", len(ev.Results), cr.n)
	}

	small, _ := measure(1 << 20)
	large, cr := measure(64 << 20)
	if cr.n != 64<<20 {
		t.Fatalf("read %d bytes of %d", cr.n, 64<<20)
	}
	if large > small+(1<<20) {
		t.Fatalf("allocation grows with the file: %d bytes for 1 MiB, %d for 64 MiB", small, large)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestVerifyContext: a cancelled context stops the read with an error.
func TestVerifyContext(t *testing.T) {
	p := loadFixturePolicy(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Verify(ctx, zeros{}, sigs(t, "ssh/ed25519.hello.txt.sig"), now)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

// TestSignatureLimits: oversized signatures and too many of them are
// malformed, never truncated.
func TestSignatureLimits(t *testing.T) {
	p := loadFixturePolicy(t)
	big := Signature{Name: "big.sig", Data: append([]byte("untrusted comment: x\n"), bytes.Repeat([]byte("A"), MaxSignatureSize)...)}
	many := make([]Signature, MaxSignatures+1)
	for i := range many {
		many[i] = sigs(t, "minisign/mini1.hello.txt.minisig")[0]
	}
	ev, err := p.Verify(context.Background(), bytes.NewReader(readFixture(t, "hello.txt")), append([]Signature{big}, many...), now)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(ev.Results[0].Err, ErrMalformed) {
		t.Fatalf("big: %v", ev.Results[0].Err)
	}
	// Exactly at the size limit is not "too large" (it fails later, as not a minisign file).
	atLimit := Signature{Name: "limit.sig", Data: big.Data[:MaxSignatureSize]}
	ev3, err := p.Verify(context.Background(), bytes.NewReader(nil), []Signature{atLimit}, now)
	if err != nil || strings.Contains(ev3.Results[0].Reason, fmt.Sprintf("larger than %d", MaxSignatureSize)) || !errors.Is(ev3.Results[0].Err, ErrMalformed) {
		t.Fatalf("at the size limit: %v %+v", err, ev3.Results)
	}
	if !strings.Contains(ev.Results[0].Reason, fmt.Sprintf("larger than %d", MaxSignatureSize)) {
		t.Fatalf("big: %v", ev.Results[0].Reason)
	}
	// More OpenPGP signature packets in one file than MaxSignaturesPerFile.
	one := readFixture(t, "openpgp/ed25519.hello.txt.sig")
	packed := Signature{Name: "packed.sig", Data: bytes.Repeat(one, MaxSignaturesPerFile+1)}
	ev2, err := p.Verify(context.Background(), bytes.NewReader(readFixture(t, "hello.txt")), []Signature{packed}, now)
	if err != nil || len(ev2.Results) != 1 || !errors.Is(ev2.Results[0].Err, ErrMalformed) {
		t.Fatalf("packed: %v %+v", err, ev2)
	}
	packed.Data = bytes.Repeat(one, MaxSignaturesPerFile)
	ev2, err = p.Verify(context.Background(), bytes.NewReader(readFixture(t, "hello.txt")), []Signature{packed}, now)
	if err != nil || len(ev2.Results) != MaxSignaturesPerFile || ev2.Results[MaxSignaturesPerFile-1].Err != nil {
		t.Fatalf("at the limit: %v %+v", err, ev2)
	}
	last := ev.Results[len(ev.Results)-1]
	if !errors.Is(last.Err, ErrMalformed) || len(ev.Results) != MaxSignatures+1 {
		t.Fatalf("too many: %d results, last %v", len(ev.Results), last.Err)
	}
}

// TestConcurrentUse: one Policy serves a pool of verifiers (run with -race).
func TestConcurrentUse(t *testing.T) {
	p := loadFixturePolicy(t)
	all := []string{"openpgp/subkey.hello.txt.sig", "openpgp/revsub.hello.txt.asc", "openpgp/p256.hello.txt.sig",
		"minisign/mini2.hello.txt.legacy.minisig", "ssh/ecdsa521.hello.txt.sig", "openpgp/expired.hello.txt.sig"}
	want := []bool{true, false, true, true, true, false}
	file := readFixture(t, "hello.txt")
	data := make([][]Signature, len(all))
	for i, n := range all {
		data[i] = sigs(t, n)
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 20; i++ {
				k := (g + i) % len(all)
				v, err := p.Check(context.Background(), "tools:x", bytes.NewReader(file), data[k], now)
				if err != nil || v.Accepted != want[k] {
					errs <- errors.New(all[k] + ": " + v.String())
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
