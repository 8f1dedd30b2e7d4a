package verify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Limits on the trust file and the key files it names.
const (
	MaxTrustFileSize = 1 << 20
	MaxKeyFileSize   = 4 << 20
	MaxKeys          = 1024
	MaxRules         = 1024
	MaxGlobs         = 256
)

// Config is the trust table of mirror.toml ([trust] with [[trust.key]] and
// [[trust.rule]]), or of a trust file of its own. docs/trust.md documents
// every field.
type Config struct {
	Keys  []KeyConfig  `toml:"key"`
	Rules []RuleConfig `toml:"rule"`
}

// KeyConfig is one [[trust.key]]: exactly one of Minisign, SSH, OpenPGP or
// File gives the key material.
type KeyConfig struct {
	Name      string     `toml:"name"`
	Minisign  string     `toml:"minisign"`
	SSH       string     `toml:"ssh"`
	OpenPGP   string     `toml:"openpgp"`
	File      string     `toml:"file"`
	Allow     []string   `toml:"allow"`
	NotBefore *time.Time `toml:"not_before"`
	NotAfter  *time.Time `toml:"not_after"`
	Revoked   *time.Time `toml:"revoked"`
	Namespace string     `toml:"namespace"`
}

// RuleConfig is one [[trust.rule]]: packages matching any glob need
// Threshold distinct keys.
type RuleConfig struct {
	Packages  []string `toml:"packages"`
	Threshold int      `toml:"threshold"`
}

// Schemes.
const (
	SchemeOpenPGP  = "openpgp"
	SchemeMinisign = "minisign"
	SchemeSSH      = "ssh"
)

// KeyRef names a key in verdicts: the trust-file name, the scheme and the
// key id (OpenPGP: primary fingerprint, and Subkey the signing subkey's
// fingerprint when a subkey signed; minisign: key id; SSH: SHA256
// fingerprint).
type KeyRef struct {
	Name   string `json:"name"`
	Scheme string `json:"scheme"`
	ID     string `json:"id"`
	Subkey string `json:"subkey,omitempty"`
}

// KeyInfo describes a trusted key, for inspect and audit.
type KeyInfo struct {
	Name      string     `json:"name"`
	Scheme    string     `json:"scheme"`
	IDs       []string   `json:"ids"` // fingerprints / key ids (OpenPGP: primary keys and subkeys)
	Allow     []string   `json:"allow"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	Revoked   *time.Time `json:"revoked,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
}

// Policy is a loaded trust file: the keys, what each may sign, and the
// thresholds. It is immutable and safe for concurrent use.
type Policy struct {
	keys  []*trustedKey
	byKey map[string]*trustedKey
	rules []rule
	pgp   *pgpRing
	mini  map[[8]byte][]*miniKey
	ssh   map[string]*sshKey // by wire encoding
	// material maps every key's canonical material (keyMaterial) to the
	// entry that holds it, across schemes.
	material map[string]string
}

type rule struct {
	globs     []glob
	threshold int
}

type trustedKey struct {
	info  KeyInfo
	allow []glob
}

func (k *trustedKey) ref() KeyRef { return KeyRef{Name: k.info.Name, Scheme: k.info.Scheme} }

func (k *trustedKey) allows(pkg string) bool {
	for _, g := range k.allow {
		if g.match(pkg) {
			return true
		}
	}
	return false
}

// window checks the trust-file validity window and revocation against now.
func (k *trustedKey) window(now time.Time) (error, string) {
	i := &k.info
	switch {
	case i.Revoked != nil && !now.Before(*i.Revoked):
		return ErrKeyRevoked, fmt.Sprintf("the trust file marks it revoked since %s; get the package re-signed by a current key", i.Revoked.Format(time.RFC3339))
	case i.NotBefore != nil && now.Before(*i.NotBefore):
		return ErrKeyNotYetValid, fmt.Sprintf("the trust file makes it valid from %s only", i.NotBefore.Format(time.RFC3339))
	case i.NotAfter != nil && now.After(*i.NotAfter):
		return ErrKeyExpired, fmt.Sprintf("the trust file makes it valid until %s; extend not_after if the key is still trusted", i.NotAfter.Format(time.RFC3339))
	}
	return nil, ""
}

// Keys describes the trusted keys, in trust-file order.
func (p *Policy) Keys() []KeyInfo {
	out := make([]KeyInfo, len(p.keys))
	for i, k := range p.keys {
		out[i] = k.info
		out[i].IDs = slices.Clone(k.info.IDs)
		out[i].Allow = slices.Clone(k.info.Allow)
		for _, t := range []**time.Time{&out[i].NotBefore, &out[i].NotAfter, &out[i].Revoked} {
			if *t != nil {
				c := **t
				*t = &c
			}
		}
	}
	return out
}

// LoadTrustFile reads a TOML file with a [trust] table (mirror.toml or a
// trust file of its own; other top-level tables are ignored here) and
// returns the policy and the file's raw bytes. Relative `file =` paths
// resolve against the file's folder.
func LoadTrustFile(path string) (*Policy, []byte, error) {
	raw, err := readLimited(path, MaxTrustFileSize)
	if err != nil {
		return nil, nil, &TrustFileError{File: path, Err: err}
	}
	cfg, err := ParseConfig(path, raw)
	if err != nil {
		return nil, nil, err
	}
	p, err := NewPolicy(*cfg, filepath.Dir(path))
	if err != nil {
		var te *TrustFileError
		if errors.As(err, &te) {
			te.File = path
			te.Line = lineOf(raw, te)
		}
		return nil, nil, err
	}
	return p, raw, nil
}

// ParseConfig decodes the trust table of a TOML document (name is for
// messages). Unknown fields inside [trust] are errors, and so are datetimes
// without a time zone (their meaning would depend on the machine); other
// top-level tables are left alone.
func ParseConfig(name string, raw []byte) (*Config, error) {
	var doc struct {
		Trust *Config `toml:"trust"`
	}
	md, err := toml.NewDecoder(bytes.NewReader(raw)).Decode(&doc)
	if err != nil {
		te := &TrustFileError{File: name, Err: err}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			te.Line = pe.Position.Line
			te.Err = errors.New(pe.Message)
		}
		return nil, te
	}
	for _, k := range md.Undecoded() {
		if len(k) > 0 && k[0] == "trust" {
			field := k[len(k)-1]
			return nil, &TrustFileError{File: name, Line: lineOfField(raw, field), Field: k.String(),
				Err: fmt.Errorf("unknown field %q; see docs/trust.md for the fields of [trust], [[trust.key]] and [[trust.rule]]", field)}
		}
	}
	if line, field := localDatetime(raw); line > 0 {
		return nil, &TrustFileError{File: name, Line: line, Field: field,
			Err: errors.New("a datetime without a time zone depends on the machine; write one with an offset, e.g. 2027-06-30T00:00:00Z")}
	}
	if doc.Trust == nil {
		return nil, &TrustFileError{File: name, Err: errors.New("no [trust] table; add [[trust.key]] entries (an empty keyring would accept nothing)")}
	}
	return doc.Trust, nil
}

var timeField = regexp.MustCompile(`^\s*"?(not_before|not_after|revoked)"?\s*=\s*([0-9][0-9:.TtZz +-]*)`)

// localDatetime finds a not_before / not_after / revoked written without a
// time zone offset (a TOML local datetime or date).
func localDatetime(raw []byte) (line int, field string) {
	inTrust := false
	for i, l := range strings.Split(string(raw), "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "[") {
			inTrust = strings.HasPrefix(strings.TrimLeft(t, "[ \t"), "trust")
			continue
		}
		if !inTrust {
			continue
		}
		m := timeField.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		v := strings.TrimSpace(m[2])
		_, clock, ok := strings.Cut(strings.ReplaceAll(strings.ToUpper(v), " ", "T"), "T")
		if !ok || !(strings.HasSuffix(clock, "Z") || strings.ContainsAny(clock, "+-")) {
			return i + 1, m[1]
		}
	}
	return 0, ""
}

var (
	keyHeader  = regexp.MustCompile(`^\s*\[\[\s*trust\s*\.\s*key\s*\]\]`)
	ruleHeader = regexp.MustCompile(`^\s*\[\[\s*trust\s*\.\s*rule\s*\]\]`)
)

// lineOf finds the line of the key or rule an error is about (and of its
// field when present), by counting [[trust.key]] / [[trust.rule]] headers.
func lineOf(raw []byte, te *TrustFileError) int {
	if te.item == 0 {
		return 0
	}
	re := keyHeader
	if te.rule {
		re = ruleHeader
	}
	lines := strings.Split(string(raw), "\n")
	seen := 0
	for i, l := range lines {
		if !re.MatchString(l) {
			continue
		}
		if seen++; seen != te.item {
			continue
		}
		if te.Field != "" {
			fre := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(te.Field) + `"?\s*=`)
			for j := i + 1; j < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[j]), "["); j++ {
				if fre.MatchString(lines[j]) {
					return j + 1
				}
			}
		}
		return i + 1
	}
	return 0
}

func lineOfField(raw []byte, field string) int {
	fre := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(field) + `"?\s*=`)
	for i, l := range strings.Split(string(raw), "\n") {
		if fre.MatchString(l) {
			return i + 1
		}
	}
	return 0
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, limit)
	}
	return b, nil
}

// NewPolicy checks cfg and loads its keys. baseDir resolves relative
// `file =` paths. A Config without keys is an error: an empty keyring would
// accept nothing, and this package never treats it as "nothing to check".
func NewPolicy(cfg Config, baseDir string) (*Policy, error) {
	if len(cfg.Keys) == 0 {
		return nil, &TrustFileError{Err: errors.New("no keys; add [[trust.key]] entries (an empty keyring would accept nothing)")}
	}
	if len(cfg.Keys) > MaxKeys || len(cfg.Rules) > MaxRules {
		return nil, &TrustFileError{Err: fmt.Errorf("more than %d keys or %d rules", MaxKeys, MaxRules)}
	}
	p := &Policy{byKey: map[string]*trustedKey{}, pgp: newPGPRing(), mini: map[[8]byte][]*miniKey{}, ssh: map[string]*sshKey{},
		material: map[string]string{}}
	names := map[string]bool{}
	for i, kc := range cfg.Keys {
		bad := func(field string, format string, args ...any) error {
			label := fmt.Sprintf("key #%d", i+1)
			if kc.Name != "" {
				label = fmt.Sprintf("key %q", kc.Name)
			}
			return &TrustFileError{Key: label, Field: field, Err: fmt.Errorf(format, args...), item: i + 1}
		}
		if kc.Name == "" {
			return nil, bad("name", "missing; give every key a unique name")
		}
		if names[kc.Name] {
			return nil, bad("name", "duplicate key name; names must be unique")
		}
		names[kc.Name] = true
		if len(kc.Allow) == 0 {
			return nil, bad("allow", "missing or empty; list the \"source:package\" globs this key may sign (\"*\" for everything)")
		}
		if len(kc.Allow) > MaxGlobs {
			return nil, bad("allow", "more than %d globs", MaxGlobs)
		}
		k := &trustedKey{info: KeyInfo{Name: kc.Name, Allow: slices.Clone(kc.Allow)}}
		for _, a := range kc.Allow {
			g, err := parseGlob(a)
			if err != nil {
				return nil, bad("allow", "%v", err)
			}
			k.allow = append(k.allow, g)
		}
		for _, t := range []struct {
			field string
			in    *time.Time
			out   **time.Time
		}{{"not_before", kc.NotBefore, &k.info.NotBefore}, {"not_after", kc.NotAfter, &k.info.NotAfter}, {"revoked", kc.Revoked, &k.info.Revoked}} {
			if t.in == nil {
				continue
			}
			switch t.in.Location().String() {
			case "datetime-local", "date-local", "time-local":
				return nil, bad(t.field, "a datetime without a time zone depends on the machine; write one with an offset, e.g. 2027-06-30T00:00:00Z")
			}
			u := t.in.UTC()
			*t.out = &u
		}
		if k.info.NotBefore != nil && k.info.NotAfter != nil && !k.info.NotBefore.Before(*k.info.NotAfter) {
			return nil, bad("not_after", "must be after not_before")
		}
		var set []string
		for _, f := range []struct{ name, v string }{{"minisign", kc.Minisign}, {"ssh", kc.SSH}, {"openpgp", kc.OpenPGP}, {"file", kc.File}} {
			if f.v != "" {
				set = append(set, f.name)
			}
		}
		if len(set) != 1 {
			return nil, bad("", "give exactly one of minisign, ssh, openpgp or file (got %d: %s)", len(set), strings.Join(set, ", "))
		}
		material, scheme := []byte(nil), set[0]
		switch scheme {
		case "minisign":
			material = []byte(kc.Minisign)
		case "ssh":
			material = []byte(kc.SSH)
		case "openpgp":
			material = []byte(kc.OpenPGP)
		case "file":
			path := kc.File
			if !filepath.IsAbs(path) {
				path = filepath.Join(baseDir, path)
			}
			b, err := readLimited(path, MaxKeyFileSize)
			if err != nil {
				return nil, bad("file", "%w", err)
			}
			material, scheme = b, sniffKey(b)
		}
		var err error
		switch scheme {
		case "minisign":
			err = p.addMinisign(k, material)
		case "ssh":
			err = p.addSSH(k, material)
		case "openpgp":
			err = p.addOpenPGP(k, material)
		default:
			err = errors.New("not an OpenPGP, minisign or SSH public key")
		}
		if err != nil {
			return nil, bad(set[0], "%w", err)
		}
		k.info.Scheme = scheme
		if kc.Namespace != "" && scheme != SchemeSSH {
			return nil, bad("namespace", "only SSH keys have a namespace")
		}
		if scheme == SchemeSSH {
			k.info.Namespace = kc.Namespace
			if k.info.Namespace == "" {
				k.info.Namespace = "file"
			}
		}
		p.keys = append(p.keys, k)
		p.byKey[k.info.Name] = k
	}
	for i, rc := range cfg.Rules {
		bad := func(field string, format string, args ...any) error {
			return &TrustFileError{Key: fmt.Sprintf("rule #%d", i+1), Field: field, Err: fmt.Errorf(format, args...), item: i + 1, rule: true}
		}
		if len(rc.Packages) == 0 || len(rc.Packages) > MaxGlobs {
			return nil, bad("packages", "list 1 to %d \"source:package\" globs", MaxGlobs)
		}
		if rc.Threshold < 1 || rc.Threshold > len(cfg.Keys) {
			return nil, bad("threshold", "must be between 1 and the number of keys (%d), got %d", len(cfg.Keys), rc.Threshold)
		}
		r := rule{threshold: rc.Threshold}
		for _, s := range rc.Packages {
			g, err := parseGlob(s)
			if err != nil {
				return nil, bad("packages", "%v", err)
			}
			r.globs = append(r.globs, g)
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// sniffKey tells the scheme of a key file by its content.
func sniffKey(b []byte) string {
	t := bytes.TrimSpace(b)
	switch {
	case bytes.HasPrefix(t, []byte("-----BEGIN PGP")):
		return SchemeOpenPGP
	case bytes.HasPrefix(t, []byte("untrusted comment:")), bytes.HasPrefix(t, []byte("RW")) && len(t) == 56:
		return SchemeMinisign
	case bytes.HasPrefix(t, []byte("ssh-")), bytes.HasPrefix(t, []byte("ecdsa-sha2-")):
		return SchemeSSH
	case len(t) > 0 && t[0]&0x80 != 0:
		return SchemeOpenPGP
	}
	return ""
}

// threshold is the highest threshold of the rules matching pkg, 1 if none.
func (p *Policy) threshold(pkg string) int {
	n := 1
	for _, r := range p.rules {
		for _, g := range r.globs {
			if g.match(pkg) {
				n = max(n, r.threshold)
				break
			}
		}
	}
	return n
}
