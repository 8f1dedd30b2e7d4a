// Package apt is the "apt" source of mirror and its publisher: a Debian or
// Ubuntu archive mirrored with a package filter, checked link by link, and
// republished under an index signed by the operator.
//
// The chain of trust, each link checked before the next one is used:
//
//  1. dists/SUITE/InRelease (or Release with its detached Release.gpg) is
//     verified against the trust file and decided as the package
//     "SOURCE:InRelease" (Debian package names are lower case, so it never
//     collides with a real package): a key allowed for "debian:*" may sign
//     it, a key allowed only for another source may not. Its Suite or
//     Codename must name the configured suite and its Valid-Until must not
//     have passed.
//  2. Each Packages index (xz, gz or plain, whichever the Release lists, by
//     its by-hash path when the Release says Acquire-By-Hash: yes) is
//     checked by size and SHA-256 against the Release before it is
//     decompressed (bounded) and parsed.
//  3. Each selected package is decided as "SOURCE:NAME" on the Release's
//     evidence, and its .deb is checked by size and SHA-256 from the
//     Packages index (by the sync pipeline, before it enters the cache).
//
// A filtered mirror cannot keep the upstream's signature; [Publish] writes
// new Packages (plain, gz, xz), a Release with SHA-256 sums and by-hash
// copies, and InRelease/Release.gpg signed by the operator's OpenPGP key.
// An unfiltered source may instead keep the upstream's files byte for byte
// (keep_upstream_signatures).
//
// Everything read from an upstream is bounded by the named Max* limits and
// paths from indexes are refused unless clean and relative.
package apt

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/mirror-tool/mirror/mirror/source/field"
)

// Type is the value of `type` in a [[source]] table for this source.
const Type = "apt"

// Limits on untrusted input.
const (
	// MaxReleaseSize bounds InRelease / Release.
	MaxReleaseSize = 16 << 20
	// MaxIndexSize bounds one compressed Packages index as downloaded.
	MaxIndexSize = 256 << 20
	// MaxPackagesSize bounds one decompressed Packages index.
	MaxPackagesSize = 1 << 30
	// MaxParagraphs bounds the paragraphs of one control file.
	MaxParagraphs = 500_000
	// MaxFields bounds the fields of one paragraph.
	MaxFields = 200
	// MaxFieldSize bounds one field's value (Description, a Release's
	// SHA256 list can be long).
	MaxFieldSize = 8 << 20
	// MaxRelations bounds the relations in one Depends-like field.
	MaxRelations = 1000
	// MaxPathLen bounds a Filename or a Release entry's path.
	MaxPathLen = 1024
)

// MaxDateSkew is how far a Release's Date may lie ahead of the clock of
// the run that checks it. apt refuses a release dated in its future ("not
// valid yet"), and the operator's indexes are signed at the upstream's
// Date: a release dated further ahead is refused, so that the signer's
// clock running ahead neither makes the mirror unusable for clients nor
// sets a rollback mark that its next, correctly dated release cannot pass.
const MaxDateSkew = time.Hour

// Errors callers branch on.
var (
	// ErrConfig: the [[source]] table is invalid.
	ErrConfig = errors.New("invalid apt source")
	// ErrControl: a control file (Release, Packages) is malformed.
	ErrControl = errors.New("malformed control file")
	// ErrLimit: an upstream file exceeds one of the Max* limits.
	ErrLimit = errors.New("limit exceeded")
	// ErrBadPath: a path from an index is not clean and relative.
	ErrBadPath = errors.New("unsafe path")
	// ErrHash: a file's size or SHA-256 differs from the signed index.
	ErrHash = errors.New("hash mismatch")
	// ErrExpired: the Release's Valid-Until has passed.
	ErrExpired = errors.New("release expired")
	// ErrNotYetValid: the Release's Date is more than MaxDateSkew ahead
	// of the clock.
	ErrNotYetValid = errors.New("release not valid yet")
	// ErrSuite: the Release is for another suite than the one asked for.
	ErrSuite = errors.New("release for another suite")
	// ErrMissing: the Release does not list an index the source needs.
	ErrMissing = errors.New("index not listed in the release")
)

// Config is a [[source]] table of type "apt".
type Config struct {
	Name string `toml:"name"`
	Type string `toml:"type"`
	// URL is the archive root (the folder holding dists/ and pool/).
	URL           string   `toml:"url"`
	Suites        []string `toml:"suites"`
	Components    []string `toml:"components"`
	Architectures []string `toml:"architectures"`
	// Packages are names or globs (path.Match) of binary packages; empty
	// means every package of the suites.
	Packages []string `toml:"packages"`
	// WithDependencies adds the Depends / Pre-Depends closure.
	WithDependencies bool `toml:"with_dependencies"`
	// SourcePackages adds, for every binary package taken, its source
	// package (.dsc and tarballs) from the suite's Sources indexes.
	SourcePackages bool `toml:"source_packages"`
	// KeepUpstreamSignatures publishes the upstream's InRelease, Release,
	// Release.gpg and Packages indexes byte for byte instead of indexes
	// signed by the operator. Only valid without a package filter.
	KeepUpstreamSignatures bool `toml:"keep_upstream_signatures"`
}

var (
	suiteRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._+-]{0,63})?$`)
	compRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._+-]{0,63})?$`)
	archRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
)

// isName reports whether s is a package name by Debian policy: at least
// two characters of a-z, 0-9, '+', '-', '.', starting with a letter or
// digit.
func isName(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '+' || c == '-' || c == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Validate checks the configuration without touching the network.
func (c *Config) Validate() error {
	fail := field.Failer(ErrConfig, c.Name)
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail("url", "%q: want the archive's http:// or https:// URL (the folder holding dists/ and pool/)", c.URL)
	}
	if len(c.Suites) == 0 {
		return fail("suites", "empty: name at least one, e.g. [\"bookworm\"]")
	}
	if len(c.Components) == 0 {
		return fail("components", "empty: name at least one, e.g. [\"main\"]")
	}
	if len(c.Architectures) == 0 {
		return fail("architectures", "empty: name at least one, e.g. [\"amd64\"]")
	}
	for _, s := range c.Suites {
		if !suiteRe.MatchString(s) {
			return fail("suites", "%q is not a suite name", s)
		}
	}
	for _, s := range c.Components {
		if !compRe.MatchString(s) {
			return fail("components", "%q is not a component name", s)
		}
	}
	for _, a := range c.Architectures {
		if !archRe.MatchString(a) || a == "all" || a == "source" {
			return fail("architectures", "%q is not an architecture (\"all\" packages come with every architecture)", a)
		}
	}
	for _, p := range c.Packages {
		if _, err := path.Match(p, ""); err != nil || p == "" || strings.Contains(p, "/") {
			return fail("packages", "bad name or glob %q", p)
		}
	}
	if c.KeepUpstreamSignatures && (len(c.Packages) > 0) {
		return fail("keep_upstream_signatures", "needs the whole suite: remove packages (a filtered mirror's indexes differ from the upstream's, so its signature cannot be kept)")
	}
	return nil
}

// base returns the archive URL with a final slash.
func (c *Config) base() string {
	if strings.HasSuffix(c.URL, "/") {
		return c.URL
	}
	return c.URL + "/"
}

// URLOf returns the upstream URL of rel, a path under the archive root.
func (c *Config) URLOf(rel string) string { return c.base() + rel }

// PublishPath returns the publish-tree path of rel: SOURCE/rel.
func (c *Config) PublishPath(rel string) string { return c.Name + "/" + rel }

// CleanPath checks that p, from an index, is a clean relative path.
func CleanPath(p string) (string, error) {
	switch {
	case p == "" || len(p) > MaxPathLen:
		return "", fmt.Errorf("%w: %q: empty or longer than %d bytes", ErrBadPath, p, MaxPathLen)
	case strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../"):
		return "", fmt.Errorf("%w: %q is not a clean relative path", ErrBadPath, p)
	}
	for _, r := range p {
		if r < 0x21 || r == 0x7f {
			return "", fmt.Errorf("%w: %q has a control character or space", ErrBadPath, p)
		}
	}
	return p, nil
}
