package apt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/mirror-tool/mirror/verify"
)

// Evidence schemes recorded in a bundle's manifest for an apt package.
const (
	SchemeClearsigned = "openpgp-clearsigned" // InRelease
	SchemeRelease     = "apt-release"         // Release, signed by the next one
	SchemeDetached    = "openpgp"             // Release.gpg
	SchemePackages    = "apt-packages"        // the Packages index
	SchemeSources     = "apt-sources"         // the Sources index
)

// ErrEvidence: a package's carried evidence does not prove it.
var ErrEvidence = errors.New("apt evidence does not prove the package")

// IsEvidence reports whether schemes (a package's signature schemes in a
// manifest) are an apt chain: a signed release and a Packages index.
func IsEvidence(schemes []string) bool {
	for _, s := range schemes {
		if s == SchemePackages || s == SchemeSources {
			return true
		}
	}
	return false
}

// Rechecker re-derives, inside the gap, the acceptance of apt packages from
// the evidence a bundle carries (the upstream's signed release and the
// Packages index): the same chain as Resolve, against a trust policy, at a
// given time. Releases and indexes shared by many packages are checked
// once. Not safe for concurrent use.
type Rechecker struct {
	policy   *verify.Policy
	now      time.Time
	releases map[string]*checkedRelease
	indexes  map[string]map[string]listed // release key + index sum -> Filename -> what the index says of it
}

// listed is what an index says of one file: the packages it belongs to
// (for a Sources index, the source packages), its SHA-256 and size.
// ambiguous is set when the index lists the file twice with different
// hashes or sizes: it then proves nothing about it. The same file listed
// under two package names (as sync accepts, each name deciding by the
// policy for itself) belongs to both.
type listed struct {
	Packages []string
	FileSum
	ambiguous bool
}

type checkedRelease struct {
	rel *Release
	ev  *verify.Evidence
	err error
}

// NewRechecker returns a Rechecker deciding with policy at now (the
// bundle's creation time).
func NewRechecker(policy *verify.Policy, now time.Time) *Rechecker {
	return &Rechecker{policy: policy, now: now, releases: map[string]*checkedRelease{}, indexes: map[string]map[string]listed{}}
}

// Loader returns a carried file by SHA-256, at most max bytes.
type Loader func(sha256 string, max int64) ([]byte, error)

// Check decides the package SOURCE:name whose .deb is at publish path
// debPath with debSHA256 and debSize, from its evidence (publish paths
// SOURCE/.../dists/SUITE/FILE, SHA-256 and scheme, as in the manifest). The
// verdict is the policy's for SOURCE:name on the release's signature, and
// name must be the package the index lists the .deb under (the source
// package, for a Sources index), so that a manifest cannot decide a file
// under another package's name; an error wrapping ErrEvidence means the
// evidence is malformed or does not list this .deb under this name with
// this hash and size.
func (rc *Rechecker) Check(ctx context.Context, source, name, debPath, debSHA256 string, debSize int64, evidence []Evidence, load Loader) (verify.Verdict, error) {
	var relDocs, idx []Evidence
	for _, e := range evidence {
		switch e.Scheme {
		case SchemeClearsigned, SchemeRelease, SchemeDetached:
			relDocs = append(relDocs, e)
		case SchemePackages, SchemeSources:
			idx = append(idx, e)
		default:
			return verify.Verdict{}, fmt.Errorf("%w: unknown evidence scheme %q (%s)", ErrEvidence, e.Scheme, e.Path)
		}
	}
	if len(idx) != 1 || len(relDocs) == 0 || len(relDocs) > 2 {
		return verify.Verdict{}, fmt.Errorf("%w: want a signed release and one Packages index, have %d and %d files", ErrEvidence, len(relDocs), len(idx))
	}
	suite, err := suiteOf(relDocs[0].Path)
	if err != nil {
		return verify.Verdict{}, err
	}
	key := ""
	for _, e := range relDocs {
		key += e.SHA256 + " "
	}
	cr, ok := rc.releases[key]
	if !ok {
		cr = rc.checkRelease(ctx, suite, relDocs, load)
		rc.releases[key] = cr
	}
	if cr.err != nil {
		return verify.Verdict{}, cr.err
	}
	if v := rc.policy.Decide(source+":"+ReleaseName, cr.ev); !v.Accepted {
		return v, nil
	}
	ik := key + idx[0].SHA256
	debs, ok := rc.indexes[ik]
	if !ok {
		debs, err = rc.checkIndex(suite, cr.rel, idx[0], load, idx[0].Scheme == SchemeSources)
		if err != nil {
			return verify.Verdict{}, err
		}
		rc.indexes[ik] = debs
	}
	fn := strings.TrimPrefix(debPath, source+"/")
	got, ok := debs[fn]
	switch {
	case !ok || got.SHA256 != debSHA256 || got.Size != debSize:
		return verify.Verdict{}, fmt.Errorf("%w: %s: the index %s does not list %s with SHA-256 %s and size %d", ErrEvidence, name, idx[0].Path, fn, debSHA256, debSize)
	case got.ambiguous:
		return verify.Verdict{}, fmt.Errorf("%w: %s: the index %s lists %s twice, with different hashes or sizes", ErrEvidence, name, idx[0].Path, fn)
	case !slices.Contains(got.Packages, name):
		return verify.Verdict{}, fmt.Errorf("%w: %s: the index %s lists %s as package %s, not %s", ErrEvidence, name, idx[0].Path, fn, strings.Join(got.Packages, ", "), name)
	}
	return rc.policy.Decide(source+":"+name, cr.ev), nil
}

// suiteOf gets SUITE from ".../dists/SUITE/FILE".
func suiteOf(p string) (string, error) {
	i := strings.LastIndex(p, "/dists/")
	if i < 0 {
		return "", fmt.Errorf("%w: %s is not under dists/SUITE/", ErrEvidence, p)
	}
	return path.Dir(p[i+len("/dists/"):]), nil
}

func (rc *Rechecker) checkRelease(ctx context.Context, suite string, docs []Evidence, load Loader) *checkedRelease {
	fail := func(err error) *checkedRelease { return &checkedRelease{err: err} }
	data := make([][]byte, len(docs))
	for i, d := range docs {
		max := int64(MaxReleaseSize)
		if d.Scheme == SchemeDetached {
			max = verify.MaxSignatureSize
		}
		b, err := load(d.SHA256, max)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", d.Path, err))
		}
		if sum256(b) != d.SHA256 {
			return fail(fmt.Errorf("%w: %s: content differs from its SHA-256", ErrEvidence, d.Path))
		}
		data[i] = b
	}
	var text []byte
	var ev *verify.Evidence
	var err error
	switch {
	case len(docs) == 1 && docs[0].Scheme == SchemeClearsigned:
		text, ev, err = rc.policy.VerifyClearsigned(ctx, data[0], rc.now)
	case len(docs) == 2 && docs[0].Scheme == SchemeRelease && docs[1].Scheme == SchemeDetached:
		text = data[0]
		ev, err = rc.policy.Verify(ctx, bytes.NewReader(data[0]), []verify.Signature{{Name: "Release.gpg", Data: data[1]}}, rc.now)
	default:
		return fail(fmt.Errorf("%w: release evidence is neither InRelease nor Release + Release.gpg", ErrEvidence))
	}
	if err != nil {
		return fail(fmt.Errorf("%s: %w", docs[len(docs)-1].Path, err))
	}
	rel, err := ParseRelease(text)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", docs[0].Path, err))
	}
	if err := rel.Check(suite, rc.now); err != nil {
		return fail(fmt.Errorf("%s: %w", docs[0].Path, err))
	}
	return &checkedRelease{rel: rel, ev: ev}
}

// checkIndex checks the index e against the release and returns what it
// lists, by Filename (by path under the archive root, for a Sources index).
func (rc *Rechecker) checkIndex(suite string, rel *Release, e Evidence, load Loader, sources bool) (map[string]listed, error) {
	i := strings.LastIndex(e.Path, "/dists/"+suite+"/")
	if i < 0 {
		return nil, fmt.Errorf("%w: index %s is not in suite %s", ErrEvidence, e.Path, suite)
	}
	relPath := e.Path[i+len("/dists/"+suite+"/"):]
	fs, ok := rel.Files[relPath]
	if !ok || fs.SHA256 != e.SHA256 {
		return nil, fmt.Errorf("%w: the release does not list %s with SHA-256 %s", ErrEvidence, relPath, e.SHA256)
	}
	data, err := load(e.SHA256, min(fs.Size, MaxIndexSize))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	if int64(len(data)) != fs.Size || sum256(data) != fs.SHA256 {
		return nil, fmt.Errorf("%w: %s differs from the release", ErrEvidence, e.Path)
	}
	plain, err := decompress(relPath, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	if sources {
		srcs, err := ParseSources(plain)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Path, err)
		}
		out := map[string]listed{}
		for _, s := range srcs {
			for _, f := range s.Files {
				list(out, s.Path(f), listed{Packages: []string{s.Name}, FileSum: FileSum{SHA256: f.SHA256, Size: f.Size}})
			}
		}
		return out, nil
	}
	pkgs, err := ParsePackages(plain)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	out := make(map[string]listed, len(pkgs))
	for _, p := range pkgs {
		list(out, p.Filename, listed{Packages: []string{p.Name}, FileSum: FileSum{SHA256: p.SHA256, Size: p.Size}})
	}
	return out, nil
}

// list adds what an index says of file fn to out; a second entry with
// another hash or size makes fn ambiguous; one with another package name
// adds that name (the same file listed twice alike, an .orig tarball
// shared by two versions of a source, is one entry).
func list(out map[string]listed, fn string, l listed) {
	have, ok := out[fn]
	switch {
	case !ok:
		out[fn] = l
	case have.FileSum != l.FileSum:
		have.ambiguous = true
		out[fn] = have
	case !slices.Contains(have.Packages, l.Packages[0]):
		have.Packages = append(slices.Clip(have.Packages), l.Packages[0])
		out[fn] = have
	}
}
