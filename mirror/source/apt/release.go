package apt

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Release is a parsed Release (the signed text of InRelease).
type Release struct {
	Paragraph Paragraph
	Suite     string
	Codename  string
	// Date and ValidUntil are zero when absent.
	Date          time.Time
	ValidUntil    time.Time
	AcquireByHash bool
	// Files are the SHA256 entries by path under dists/SUITE/.
	Files map[string]FileSum
}

// FileSum is one entry of a Release's SHA256 list.
type FileSum struct {
	SHA256 string
	Size   int64
}

// ParseRelease parses the text of a Release file. It must be a single
// paragraph with a SHA256 list of clean paths (MD5Sum and SHA1 are
// ignored: apt itself no longer trusts them).
func ParseRelease(text []byte) (*Release, error) {
	if len(text) > MaxReleaseSize {
		return nil, fmt.Errorf("%w: release larger than %d bytes", ErrLimit, MaxReleaseSize)
	}
	ps, err := ParseControl(text)
	if err != nil {
		return nil, err
	}
	if len(ps) != 1 {
		return nil, fmt.Errorf("%w: a release has one paragraph, this has %d", ErrControl, len(ps))
	}
	p := ps[0]
	r := &Release{Paragraph: p, Suite: p.Value("Suite"), Codename: p.Value("Codename"), Files: map[string]FileSum{}}
	if r.Suite == "" && r.Codename == "" {
		return nil, fmt.Errorf("%w: release without Suite and Codename", ErrControl)
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"Date", &r.Date}, {"Valid-Until", &r.ValidUntil}} {
		if v, ok := p.Get(f.name); ok {
			t, err := ParseDate(v)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrControl, f.name, err)
			}
			*f.dst = t
		}
	}
	r.AcquireByHash = strings.EqualFold(p.Value("Acquire-By-Hash"), "yes")
	list, ok := p.Get("SHA256")
	if !ok {
		return nil, fmt.Errorf("%w: release without a SHA256 list", ErrControl)
	}
	for _, line := range strings.Split(list, "\n") {
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		if len(fs) != 3 || !isHex64(fs[0]) {
			return nil, fmt.Errorf("%w: SHA256 line %q: want \"sha256 size path\"", ErrControl, line)
		}
		size, err := strconv.ParseInt(fs[1], 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("%w: SHA256 line %q: size", ErrControl, line)
		}
		if _, err := CleanPath(fs[2]); err != nil {
			return nil, fmt.Errorf("SHA256 list: %w", err)
		}
		if _, dup := r.Files[fs[2]]; dup {
			return nil, fmt.Errorf("%w: SHA256 list names %s twice", ErrControl, fs[2])
		}
		r.Files[fs[2]] = FileSum{SHA256: fs[0], Size: size}
	}
	return r, nil
}

// dateLayouts are the forms of Release dates seen in archives (RFC 2822
// with "UTC" or a numeric zone, with or without the weekday).
var dateLayouts = []string{
	"Mon, 02 Jan 2006 15:04:05 MST",
	"Mon, 02 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, _2 Jan 2006 15:04:05 MST",
	"Mon, _2 Jan 2006 15:04:05 -0700",
	"02 Jan 2006 15:04:05 MST",
	"02 Jan 2006 15:04:05 -0700",
}

// ParseDate parses a Release Date or Valid-Until field. Zone names other
// than UTC and GMT are refused (Go would invent an offset for them).
func ParseDate(s string) (time.Time, error) {
	for _, l := range dateLayouts {
		t, err := time.Parse(l, s)
		if err != nil {
			continue
		}
		if strings.Contains(l, "MST") {
			if z, _ := t.Zone(); z != "UTC" && z != "GMT" {
				continue
			}
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
		}
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 2822 date", s)
}

// FormatDate formats t as apt writes Release dates.
func FormatDate(t time.Time) string { return t.UTC().Format("Mon, 02 Jan 2006 15:04:05 UTC") }

// Check applies the release's own rules at now: it must be for suite (its
// Suite or Codename), its Date must not lie more than MaxDateSkew after now
// and its Valid-Until must not have passed.
func (r *Release) Check(suite string, now time.Time) error {
	if r.Suite != suite && r.Codename != suite {
		return fmt.Errorf("%w: asked for %q, the release says Suite %q, Codename %q (a replayed or misconfigured release)", ErrSuite, suite, r.Suite, r.Codename)
	}
	if r.Date.After(now.Add(MaxDateSkew)) {
		return fmt.Errorf("%w: Date %s is more than %v after now (%s); the signer's clock runs ahead (or ours is behind): apt clients would refuse it, and it would lock out the next, correctly dated release", ErrNotYetValid, FormatDate(r.Date), MaxDateSkew, FormatDate(now))
	}
	if !r.ValidUntil.IsZero() && now.After(r.ValidUntil) {
		return fmt.Errorf("%w: Valid-Until %s has passed (now %s); the upstream must publish a fresh release", ErrExpired, FormatDate(r.ValidUntil), FormatDate(now))
	}
	return nil
}

// Index picks the Packages index for component/binary-arch: the first of
// Packages.gz, Packages.xz, Packages that the release lists, and returns
// its path under dists/SUITE/ and its sum. gzip comes first: every sync
// decodes the index, changed or not, and a Debian-sized one (45 MB of
// text) takes about 0.06 s from gzip against 0.7 s from xz, for about 30 %
// more bytes to download when it changes.
func (r *Release) Index(component, arch string) (string, FileSum, error) {
	dir := component + "/binary-" + arch + "/"
	for _, n := range indexOrder("Packages") {
		if s, ok := r.Files[dir+n]; ok {
			return dir + n, s, nil
		}
	}
	return "", FileSum{}, fmt.Errorf("%w: no %sPackages(.gz|.xz)", ErrMissing, dir)
}

// indexOrder is the order in which an index's variants are preferred.
func indexOrder(base string) []string { return []string{base + ".gz", base + ".xz", base} }

// ByHash returns the by-hash path of the file rel (under dists/SUITE/).
func ByHash(rel, sha256 string) string {
	dir := rel[:strings.LastIndexByte(rel, '/')+1]
	return dir + "by-hash/SHA256/" + sha256
}
