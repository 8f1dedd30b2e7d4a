// Package files is the "files" source of mirror: an upstream that publishes
// release files over HTTP(S), signed in one of two shapes that real projects
// use:
//
//   - a detached signature beside each file, found with URL templates such as
//     "{file}.minisig", "{file}.asc" or "{dir}/SIGS/{name}.sig";
//   - a signed checksum list covering many files: SHA256SUMS with a detached
//     SHA256SUMS.sig / .gpg / .minisig, or a clearsigned SHASUMS256.txt.asc.
//
// A package's name is the file's path under the source URL, and trust scopes
// match "SOURCE:PATH". The files are either listed in the configuration or
// chosen by globs over a listing (an operator-given list of upstream paths)
// or over the checksum list's entries.
//
// This package is pure: it parses listings and checksum lists (untrusted
// input, bounded and with hostile names refused) and turns the
// configuration into a package set. Fetching and verification belong to the
// sync pipeline.
package files

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"
	"unicode"

	"github.com/mirror-tool/mirror/mirror/source/field"
)

// Type is the value of `type` in a [[source]] table for this source.
const Type = "files"

// Limits on untrusted input.
const (
	// MaxChecksumsSize bounds a checksum list (SHA256SUMS).
	MaxChecksumsSize = 16 << 20
	// MaxListingSize bounds a listing.
	MaxListingSize = 16 << 20
	// MaxEntries bounds the entries of a checksum list or a listing.
	MaxEntries = 200_000
	// MaxPathLen bounds one path from a listing or checksum list.
	MaxPathLen = 1024
	// MaxSignatureSize bounds one detached signature file (OpenPGP
	// signatures with many subpackets or several signatures stay well
	// below it).
	MaxSignatureSize = 64 << 10
)

var (
	// ErrBadPath is returned for a path that is not a clean relative path.
	ErrBadPath = errors.New("unsafe path")
	// ErrChecksums is returned for a malformed checksum list.
	ErrChecksums = errors.New("malformed checksum list")
	// ErrListing is returned for a malformed listing.
	ErrListing = errors.New("malformed listing")
	// ErrConfig is returned for an invalid source configuration.
	ErrConfig = errors.New("invalid files source")
)

// Config is a [[source]] table of type "files".
type Config struct {
	Name string `toml:"name"`
	Type string `toml:"type"`
	// URL is the base URL; package paths are relative to it.
	URL string `toml:"url"`
	// Files are paths under URL, or globs (path.Match syntax: '*' does not
	// cross '/') over the listing, or over the checksum list's entries.
	Files []string `toml:"files"`
	// Listing is a local file (relative to the config's folder) or a URL
	// with one upstream path per line, for globs in Files.
	Listing string `toml:"listing"`
	// Signatures are URL templates of each file's detached signatures.
	Signatures []string `toml:"signatures"`
	// Checksums is the checksum list's path under URL (or a URL).
	Checksums string `toml:"checksums"`
	// ChecksumsSignature is the list's detached signature; empty when the
	// list is clearsigned.
	ChecksumsSignature string `toml:"checksums_signature"`
}

// Validate checks the configuration without touching the network.
func (c *Config) Validate() error {
	fail := field.Failer(ErrConfig, c.Name)
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail("url", "%q: want an http:// or https:// URL", c.URL)
	}
	if len(c.Files) == 0 {
		return fail("files", "empty: list the paths (or globs) of the files to mirror")
	}
	for _, f := range c.Files {
		if _, err := path.Match(f, ""); err != nil {
			return fail("files", "bad glob %q: %v", f, err)
		}
		if !isGlob(f) {
			if _, err := CleanPath(f); err != nil {
				return fail("files", "%v", err)
			}
		}
	}
	if len(c.Signatures) == 0 && c.Checksums == "" {
		return fail("", "nothing to verify with: set signatures (URL templates like \"{file}.minisig\") or checksums")
	}
	if c.ChecksumsSignature != "" && c.Checksums == "" {
		return fail("checksums_signature", "set but checksums is not")
	}
	for _, t := range c.Signatures {
		if _, err := Expand(t, "a/b"); err != nil {
			return fail("signatures", "%v", err)
		}
	}
	for _, f := range []struct{ field, p string }{{"checksums", c.Checksums}, {"checksums_signature", c.ChecksumsSignature}} {
		if f.p != "" && !isURL(f.p) {
			if _, err := CleanPath(f.p); err != nil {
				return fail(f.field, "%v", err)
			}
		}
	}
	return nil
}

// Signature is one detached signature of a package.
type Signature struct {
	// URL to fetch it from.
	URL string
	// Path in the publish tree, relative to the mirror root.
	Path string
}

// Package is one file to mirror.
type Package struct {
	// Name is the path under the source URL (the package name in scopes).
	Name string
	URL  string
	// Path in the publish tree: SOURCE/Name.
	Path       string
	Signatures []Signature
	// SHA256 is the hash from the signed checksum list, "" without one.
	SHA256 string
}

// Rejected is a file that was asked for but cannot be taken.
type Rejected struct {
	Name   string
	Reason string
}

// ListingURL returns where the listing lives and whether it is a URL (false:
// a local path).
func (c *Config) ListingURL() (string, bool) {
	if c.Listing == "" {
		return "", false
	}
	if isURL(c.Listing) {
		return c.Listing, true
	}
	return c.Listing, false
}

// ChecksumsURLs returns the URLs of the checksum list and its detached
// signature ("" when clearsigned), and the list's folder under the source
// (its entries are relative to it).
func (c *Config) ChecksumsURLs() (list, sig, dir string) {
	if c.Checksums == "" {
		return "", "", ""
	}
	list = c.resolve(c.Checksums)
	if c.ChecksumsSignature != "" {
		sig = c.resolve(c.ChecksumsSignature)
	}
	if !isURL(c.Checksums) {
		dir = path.Dir(c.Checksums)
		if dir == "." {
			dir = ""
		}
	}
	return list, sig, dir
}

// Publish returns the publish-tree paths of the checksum list and its
// signature (for URLs outside the source, their base names under the source).
func (c *Config) Publish(u string) string {
	if rel, ok := c.under(u); ok {
		return c.Name + "/" + rel
	}
	pu, err := url.Parse(u)
	if err != nil {
		return c.Name + "/" + "_"
	}
	return c.Name + "/" + path.Base(pu.Path)
}

// Packages turns the configuration into the package set. listing holds the
// listing's paths (nil without a listing); sums the checksum list's entries
// with listDir prepended (nil without a checksum list). Files asked for by
// name but absent from the checksum list, and globs that match nothing, are
// returned as rejections with their reason.
func (c *Config) Packages(listing []string, sums map[string]string, listName string) ([]Package, []Rejected, error) {
	var universe []string
	switch {
	case listing != nil:
		universe = listing
	case sums != nil:
		universe = make([]string, 0, len(sums))
		for n := range sums {
			universe = append(universe, n)
		}
		sort.Strings(universe)
	}
	chosen := map[string]bool{}
	var names []string
	var rejected []Rejected
	for _, f := range c.Files {
		if !isGlob(f) {
			if !chosen[f] {
				chosen[f] = true
				names = append(names, f)
			}
			continue
		}
		if universe == nil {
			return nil, nil, fmt.Errorf("%w %q: glob %q needs a listing or a checksum list to match against", ErrConfig, c.Name, f)
		}
		n := 0
		for _, p := range universe {
			if ok, _ := path.Match(f, p); ok {
				n++
				if !chosen[p] {
					chosen[p] = true
					names = append(names, p)
				}
			}
		}
		if n == 0 {
			rejected = append(rejected, Rejected{Name: f, Reason: "glob matches no file upstream"})
		}
	}
	sort.Strings(names)
	pkgs := make([]Package, 0, len(names))
	for _, n := range names {
		p := Package{Name: n, URL: c.resolve(n), Path: c.Name + "/" + n}
		if sums != nil {
			sum, ok := sums[n]
			if !ok {
				rejected = append(rejected, Rejected{Name: n, Reason: "not listed in the signed checksum list " + listName})
				continue
			}
			p.SHA256 = sum
		}
		for _, t := range c.Signatures {
			rel, err := Expand(t, n)
			if err != nil {
				return nil, nil, fmt.Errorf("%w %q: signature template %q for %s: %v", ErrConfig, c.Name, t, n, err)
			}
			u := c.resolve(rel)
			p.Signatures = append(p.Signatures, Signature{URL: u, Path: c.sigPublish(u, n)})
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, rejected, nil
}

// sigPublish is where a signature appears in the publish tree: at its own
// path when it lives under the source, else beside the file.
func (c *Config) sigPublish(u, file string) string {
	if rel, ok := c.under(u); ok {
		return c.Name + "/" + rel
	}
	pu, _ := url.Parse(u)
	dir := path.Dir(file)
	base := path.Base(pu.Path)
	if dir == "." {
		return c.Name + "/" + base
	}
	return c.Name + "/" + dir + "/" + base
}

func (c *Config) base() string {
	if strings.HasSuffix(c.URL, "/") {
		return c.URL
	}
	return c.URL + "/"
}

func (c *Config) resolve(rel string) string {
	if isURL(rel) {
		return rel
	}
	return c.base() + escapePath(rel)
}

// under reports whether u lies under the source URL and the clean path
// relative to it.
func (c *Config) under(u string) (string, bool) {
	b := c.base()
	if !strings.HasPrefix(u, b) {
		return "", false
	}
	rel, err := url.PathUnescape(u[len(b):])
	if err != nil {
		return "", false
	}
	if _, err := CleanPath(rel); err != nil {
		return "", false
	}
	return rel, true
}

func escapePath(p string) string {
	if plainPath(p) {
		return p // nothing to escape (sync resolves every file of a source)
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// plainPath reports whether every byte of p is '/' or one that
// url.PathEscape leaves as it is (letters, digits, "-_.~"): escapePath
// returns such a path unchanged.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
			return false
		}
	}
	return true
}

// expand replaces the placeholders of tmpl, left to right, without
// rescanning what it put in (as strings.Replacer does, without building
// one per file: sync expands a template for every file of a source).
func expand(tmpl, file string) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	var b strings.Builder
	b.Grow(len(tmpl) + len(file))
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		rest := tmpl[i:]
		switch {
		case strings.HasPrefix(rest, "{file}"):
			b.WriteString(file)
			tmpl = rest[len("{file}"):]
		case strings.HasPrefix(rest, "{name}"):
			b.WriteString(path.Base(file))
			tmpl = rest[len("{name}"):]
		case strings.HasPrefix(rest, "{dir}"):
			b.WriteString(path.Dir(file))
			tmpl = rest[len("{dir}"):]
		default:
			b.WriteByte('{')
			tmpl = rest[1:]
		}
	}
}

// Expand fills a signature template for file (a clean path under the
// source): {file} is the path, {name} its base name, {dir} its folder ("."
// for the top). The result is a path under the source or an absolute URL.
func Expand(tmpl, file string) (string, error) {
	out := expand(tmpl, file)
	if strings.ContainsAny(out, "{}") {
		return "", fmt.Errorf("template %q: unknown placeholder (want {file}, {name} or {dir})", tmpl)
	}
	if isURL(out) {
		if _, err := url.Parse(out); err != nil {
			return "", fmt.Errorf("template %q: %v", tmpl, err)
		}
		return out, nil
	}
	out = strings.TrimPrefix(out, "./")
	if _, err := CleanPath(out); err != nil {
		return "", fmt.Errorf("template %q: %w", tmpl, err)
	}
	if out == file {
		return "", fmt.Errorf("template %q: names the file itself, not a signature", tmpl)
	}
	return out, nil
}

// CleanPath checks that p is a clean, relative, forward-slash path with no
// "..", no empty or "." elements, no control characters and no backslashes,
// at most MaxPathLen bytes. It returns p unchanged when it is.
func CleanPath(p string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w %q: %s", ErrBadPath, p, why)
	}
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxPathLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxPathLen))
	case strings.HasPrefix(p, "/"):
		return bad("absolute")
	case strings.ContainsRune(p, '\\'):
		return bad("backslash")
	}
	for _, r := range p {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return bad("control character or invalid UTF-8")
		}
	}
	for rest, more := p, true; more; {
		var e string
		e, rest, more = strings.Cut(rest, "/")
		switch e {
		case "":
			return bad("empty element")
		case ".":
			return bad(`"." element`)
		case "..":
			return bad(`".." element`)
		}
	}
	return p, nil
}

// ParseChecksums parses a checksum list in the format of sha256sum ("HEX  NAME"
// or "HEX *NAME", one per line; a leading "./" on NAME is dropped). Blank
// lines are skipped. Names are prefixed with dir + "/" when dir is not empty.
// Every name must be a clean relative path; a name listed twice with
// different hashes is an error. On error nothing is returned.
func ParseChecksums(data []byte, dir string) (map[string]string, error) {
	if len(data) > MaxChecksumsSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrChecksums, MaxChecksumsSize)
	}
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxPathLen+80)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(l) == "" {
			continue
		}
		if len(l) < 66 || l[64] != ' ' || (l[65] != ' ' && l[65] != '*') {
			return nil, fmt.Errorf("%w: line %d: want \"SHA256  NAME\"", ErrChecksums, line)
		}
		sum := strings.ToLower(l[:64])
		if !isHex(sum) {
			return nil, fmt.Errorf("%w: line %d: %q is not a hex SHA-256", ErrChecksums, line, l[:64])
		}
		name := strings.TrimPrefix(l[66:], "./")
		if _, err := CleanPath(name); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrChecksums, line, err)
		}
		if dir != "" {
			name = dir + "/" + name
		}
		if old, ok := sums[name]; ok && old != sum {
			return nil, fmt.Errorf("%w: line %d: %s listed twice with different hashes", ErrChecksums, line, name)
		}
		sums[name] = sum
		if len(sums) > MaxEntries {
			return nil, fmt.Errorf("%w: more than %d entries", ErrChecksums, MaxEntries)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrChecksums, line+1, err)
	}
	return sums, nil
}

// ParseListing parses a listing: one clean relative path per line; blank
// lines and lines starting with '#' are skipped. On error nothing is
// returned.
func ParseListing(data []byte) ([]string, error) {
	if len(data) > MaxListingSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrListing, MaxListingSize)
	}
	var out []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxPathLen+2)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		l = strings.TrimPrefix(l, "./")
		if strings.TrimSpace(l) != l {
			// "./ x": a line is trimmed, so a name that starts or ends
			// with white space cannot be written in a listing at all.
			return nil, fmt.Errorf("%w: line %d: the path starts or ends with white space", ErrListing, line)
		}
		if _, err := CleanPath(l); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrListing, line, err)
		}
		if seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, l)
		if len(out) > MaxEntries {
			return nil, fmt.Errorf("%w: more than %d entries", ErrListing, MaxEntries)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrListing, line+1, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// IsClearsigned reports whether data is an OpenPGP clearsigned document.
func IsClearsigned(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN PGP SIGNED MESSAGE-----"))
}

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
