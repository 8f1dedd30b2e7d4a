package apt

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/mirror-tool/mirror/mirror/fetch"
	"github.com/mirror-tool/mirror/verify"
)

// Request asks a Getter for one upstream file.
type Request struct {
	// Path is under the archive root (dists/SUITE/InRelease, ...).
	Path string
	// Max bounds the body: more is an error matching fetch.ErrTooLarge.
	Max int64
	// SHA256, when set, is the hash the release promises: a Getter may
	// answer from a copy with that hash verified in an earlier run
	// (by-hash files never change), without a request.
	SHA256 string
	// Conditional: the Getter may revalidate a copy verified in an
	// earlier run (If-None-Match / If-Modified-Since: one round trip when
	// unchanged). Only for the release files.
	Conditional bool
}

// Getter fetches one upstream file. A missing file is an error matching
// fetch.ErrNotFound. Whatever it returns is checked by the caller.
type Getter func(ctx context.Context, req Request) ([]byte, error)

// ReleaseName is the package name (after "SOURCE:") that a suite's
// InRelease / Release.gpg signer must be allowed for in the trust file.
const ReleaseName = "InRelease"

// Selection is what Resolve found: the verified suites and the .deb files
// to download, each with the size and SHA-256 it must have.
type Selection struct {
	Config   *Config
	Suites   []*Suite
	Debs     []*Deb
	Rejected []Rejected
}

// Suite is one verified suite.
type Suite struct {
	Name    string
	Release *Release
	// Signed are the upstream's release files as fetched, by path under
	// dists/SUITE/: "InRelease", or "Release" and "Release.gpg".
	Signed []File
	// Indexes are the upstream Packages indexes used (and, with
	// keep_upstream_signatures, every variant listed and served), checked
	// against the Release, by path under dists/SUITE/.
	Indexes []File
	// Packages are the accepted packages by "component/arch", index order.
	Packages map[string][]*Package
	// Sources are the accepted source packages by component (with
	// source_packages).
	Sources map[string][]*SourcePackage
	// Components and Architectures as configured.
	Components    []string
	Architectures []string
}

// File is a file and where it goes.
type File struct {
	Path string
	Data []byte
}

// Deb is one .deb to download.
type Deb struct {
	Name         string
	Version      string
	Architecture string
	// Filename is the path under the archive root.
	Filename string
	Size     int64
	SHA256   string
	// Keys are the trusted keys whose signature on the Release was
	// accepted for this package.
	Keys []string
	// Evidence: the signed release files and the Packages index that
	// vouch for the .deb (publish paths), with schemes for the manifest.
	Evidence []Evidence
}

// Evidence is one file of a .deb's chain of trust.
type Evidence struct {
	Path   string
	SHA256 string
	Size   int64
	Scheme string
}

// Rejected is a package (or a whole suite, "dists/SUITE/...") that cannot
// be taken, with why.
type Rejected struct {
	Name   string
	Reason string
}

// Resolve walks the chain of trust of every configured suite and returns
// the accepted packages. Rejections (a signature, a hash, an expired or
// misdirected release, an unsatisfiable dependency, a key not allowed for a
// package) are in the result; an error is returned only for failures that
// say nothing about the upstream's honesty (network, context).
func Resolve(ctx context.Context, cfg *Config, get Getter, policy *verify.Policy, now time.Time) (*Selection, error) {
	sel := &Selection{Config: cfg}
	debs := map[string]*Deb{}
	seen := map[Rejected]bool{}
	reject := func(name, reason string) {
		r := Rejected{Name: name, Reason: reason}
		if !seen[r] {
			seen[r] = true
			sel.Rejected = append(sel.Rejected, r)
		}
	}
	for _, name := range cfg.Suites {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, why, err := resolveSuite(ctx, cfg, name, get, policy, now, reject, debs)
		if err != nil {
			return nil, err
		}
		if why != "" {
			reject("dists/"+name, why+"; nothing of this suite was taken")
			continue
		}
		sel.Suites = append(sel.Suites, s)
	}
	for _, d := range debs {
		sel.Debs = append(sel.Debs, d)
	}
	sort.Slice(sel.Debs, func(i, j int) bool { return sel.Debs[i].Filename < sel.Debs[j].Filename })
	return sel, nil
}

func sum256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// resolveSuite returns the suite, or why it is rejected as a whole.
func resolveSuite(ctx context.Context, cfg *Config, name string, get Getter, policy *verify.Policy, now time.Time,
	reject func(string, string), debs map[string]*Deb) (*Suite, string, error) {
	dists := "dists/" + name + "/"
	s := &Suite{Name: name, Packages: map[string][]*Package{}, Sources: map[string][]*SourcePackage{}, Components: cfg.Components, Architectures: cfg.Architectures}

	// Link 1: the release, signed.
	var text []byte
	var ev *verify.Evidence
	var scheme string
	in, err := get(ctx, Request{Path: dists + "InRelease", Max: MaxReleaseSize, Conditional: true})
	switch {
	case errors.Is(err, fetch.ErrTooLarge):
		return nil, fmt.Sprintf("%sInRelease: %v: larger than %d bytes", dists, ErrLimit, MaxReleaseSize), nil
	case err == nil:
		plain, e, verr := policy.VerifyClearsigned(ctx, in, now)
		if verr != nil {
			return nil, fmt.Sprintf("%sInRelease: %v", dists, verr), nil
		}
		text, ev, scheme = plain, e, SchemeClearsigned
		s.Signed = []File{{Path: "InRelease", Data: in}}
	case errors.Is(err, fetch.ErrNotFound):
		rel, err := get(ctx, Request{Path: dists + "Release", Max: MaxReleaseSize, Conditional: true})
		if errors.Is(err, fetch.ErrTooLarge) {
			return nil, fmt.Sprintf("%sRelease: %v: larger than %d bytes", dists, ErrLimit, MaxReleaseSize), nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("%sRelease (there is no InRelease): %w", dists, err)
		}
		sig, err := get(ctx, Request{Path: dists + "Release.gpg", Max: verify.MaxSignatureSize})
		if errors.Is(err, fetch.ErrNotFound) {
			return nil, dists + "Release has no Release.gpg and there is no InRelease: an unsigned archive cannot be mirrored", nil
		}
		if errors.Is(err, fetch.ErrTooLarge) {
			return nil, fmt.Sprintf("%sRelease.gpg: %v: larger than %d bytes", dists, ErrLimit, verify.MaxSignatureSize), nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("%sRelease.gpg: %w", dists, err)
		}
		e, verr := policy.Verify(ctx, bytes.NewReader(rel), []verify.Signature{{Name: "Release.gpg", Data: sig}}, now)
		if verr != nil {
			return nil, fmt.Sprintf("%sRelease.gpg: %v", dists, verr), nil
		}
		text, ev, scheme = rel, e, SchemeDetached
		s.Signed = []File{{Path: "Release", Data: rel}, {Path: "Release.gpg", Data: sig}}
	default:
		return nil, "", fmt.Errorf("%sInRelease: %w", dists, err)
	}
	v := policy.Decide(cfg.Name+":"+ReleaseName, ev)
	if !v.Accepted {
		return nil, fmt.Sprintf("%s%s: %v", dists, s.Signed[len(s.Signed)-1].Path, v.Err), nil
	}
	rel, err := ParseRelease(text)
	if err != nil {
		return nil, fmt.Sprintf("%s%s: %v", dists, s.Signed[0].Path, err), nil
	}
	if err := rel.Check(name, now); err != nil {
		return nil, fmt.Sprintf("%s%s: %v", dists, s.Signed[0].Path, err), nil
	}
	s.Release = rel
	var relEvidence []Evidence
	for i, f := range s.Signed {
		sch := SchemeRelease
		if i == len(s.Signed)-1 {
			sch = scheme
		}
		relEvidence = append(relEvidence, Evidence{Path: cfg.evidencePath(name, f.Path), SHA256: sum256(f.Data), Size: int64(len(f.Data)), Scheme: sch})
	}

	// Link 2: the Packages indexes, by the release's hashes.
	type located struct {
		comp string
		pkgs []Package
		idx  Evidence
	}
	byArch := map[string][]located{}
	for _, comp := range cfg.Components {
		for _, arch := range cfg.Architectures {
			idx, fs, err := rel.Index(comp, arch)
			if err != nil {
				return nil, fmt.Sprintf("%s%s: %v", dists, s.Signed[0].Path, err), nil
			}
			data, why, err := getIndex(ctx, get, dists, rel, idx, fs)
			if err != nil || why != "" {
				return nil, why, err
			}
			s.Indexes = append(s.Indexes, File{Path: idx, Data: data})
			plain, err := decompress(idx, data)
			if err != nil {
				return nil, fmt.Sprintf("%s%s: %v", dists, idx, err), nil
			}
			if ps, ok := rel.Files[comp+"/binary-"+arch+"/Packages"]; ok && idx != comp+"/binary-"+arch+"/Packages" {
				if int64(len(plain)) != ps.Size || sum256(plain) != ps.SHA256 {
					return nil, fmt.Sprintf("%s%s: %v: decompressed, it differs from the release's Packages entry", dists, idx, ErrHash), nil
				}
			}
			pkgs, err := ParsePackages(plain)
			if err != nil {
				return nil, fmt.Sprintf("%s%s: %v", dists, idx, err), nil
			}
			if cfg.KeepUpstreamSignatures {
				if err := keepVariants(ctx, get, dists, rel, comp+"/binary-"+arch+"/", []string{"Packages.xz", "Packages.gz", "Packages"}, idx, s); err != nil {
					return nil, "", err
				}
			}
			byArch[arch] = append(byArch[arch], located{comp: comp, pkgs: pkgs,
				idx: Evidence{Path: cfg.evidencePath(name, idx), SHA256: fs.SHA256, Size: fs.Size, Scheme: SchemePackages}})
		}
	}

	// Link 3: the package set, each package decided on the release's
	// evidence; the .deb's size and hash come from the index.
	for _, arch := range cfg.Architectures {
		var all []Package
		var comps []string
		var idxs []Evidence
		twice := newTwice()
		for _, l := range byArch[arch] {
			all = append(all, l.pkgs...)
			twice.index()
			for _, p := range l.pkgs {
				comps = append(comps, l.comp)
				idxs = append(idxs, l.idx)
				twice.add(p.Filename, FileSum{SHA256: p.SHA256, Size: p.Size})
			}
		}
		u := NewUniverse(all)
		picked, unres := u.Select(cfg.Packages, cfg.WithDependencies)
		for _, x := range unres {
			reject(x.Name, fmt.Sprintf("%s (suite %s, %s)", x.Reason, name, arch))
		}
		for _, p := range picked {
			i := indexOf(all, p)
			v := policy.Decide(cfg.Name+":"+p.Name, ev)
			if !v.Accepted {
				reject(p.Name, fmt.Sprintf("%s%s: %v", dists, s.Signed[len(s.Signed)-1].Path, v.Err))
				continue
			}
			if twice.files[p.Filename] {
				reject(p.Name, fmt.Sprintf("%s is listed twice with different hashes or sizes in the index %s", p.Filename, idxs[i].Path))
				continue
			}
			if d, ok := debs[p.Filename]; ok {
				if d.SHA256 != p.SHA256 || d.Size != p.Size {
					reject(p.Name, fmt.Sprintf("%s is listed with two different hashes or sizes (suite %s and another index)", p.Filename, name))
					continue
				}
				d.Keys = mergeKeys(d.Keys, v.Passed)
			} else {
				d := &Deb{Name: p.Name, Version: p.Version, Architecture: p.Architecture, Filename: p.Filename,
					Size: p.Size, SHA256: p.SHA256, Keys: mergeKeys(nil, v.Passed)}
				d.Evidence = append(append(d.Evidence, relEvidence...), idxs[i])
				debs[p.Filename] = d
			}
			key := comps[i] + "/" + arch
			s.Packages[key] = append(s.Packages[key], p)
		}
	}
	if cfg.SourcePackages {
		if why, err := resolveSources(ctx, cfg, s, get, policy, ev, relEvidence, reject, debs); err != nil || why != "" {
			return nil, why, err
		}
	}
	return s, "", nil
}

// resolveSources adds the source packages of the suite's accepted binary
// packages, from the Sources indexes checked against the release.
func resolveSources(ctx context.Context, cfg *Config, s *Suite, get Getter, policy *verify.Policy, ev *verify.Evidence,
	relEvidence []Evidence, reject func(string, string), debs map[string]*Deb) (string, error) {
	dists := "dists/" + s.Name + "/"
	type located struct {
		comp string
		src  *SourcePackage
		idx  Evidence
	}
	index := map[string]located{} // "name version"
	twice := newTwice()
	for _, comp := range cfg.Components {
		idx, fs, err := s.Release.SourcesIndex(comp)
		if err != nil {
			return fmt.Sprintf("%s%s: %v (source_packages is set)", dists, s.Signed[0].Path, err), nil
		}
		data, why, err := getIndex(ctx, get, dists, s.Release, idx, fs)
		if err != nil || why != "" {
			return why, err
		}
		s.Indexes = append(s.Indexes, File{Path: idx, Data: data})
		plain, err := decompress(idx, data)
		if err != nil {
			return fmt.Sprintf("%s%s: %v", dists, idx, err), nil
		}
		if ps, ok := s.Release.Files[comp+"/source/Sources"]; ok && idx != comp+"/source/Sources" {
			if int64(len(plain)) != ps.Size || sum256(plain) != ps.SHA256 {
				return fmt.Sprintf("%s%s: %v: decompressed, it differs from the release's Sources entry", dists, idx, ErrHash), nil
			}
		}
		srcs, err := ParseSources(plain)
		if err != nil {
			return fmt.Sprintf("%s%s: %v", dists, idx, err), nil
		}
		if cfg.KeepUpstreamSignatures {
			if err := keepVariants(ctx, get, dists, s.Release, comp+"/source/", []string{"Sources.xz", "Sources.gz", "Sources"}, idx, s); err != nil {
				return "", err
			}
		}
		ie := Evidence{Path: cfg.evidencePath(s.Name, idx), SHA256: fs.SHA256, Size: fs.Size, Scheme: SchemeSources}
		twice.index()
		for i := range srcs {
			for _, f := range srcs[i].Files {
				twice.add(srcs[i].Path(f), FileSum{SHA256: f.SHA256, Size: f.Size})
			}
		}
		for i := range srcs {
			k := srcs[i].Name + " " + srcs[i].Version
			if _, dup := index[k]; !dup {
				index[k] = located{comp: comp, src: &srcs[i], idx: ie}
			}
		}
	}
	wanted := map[string]bool{}
	var order []string
	for _, comp := range cfg.Components {
		for _, arch := range cfg.Architectures {
			for _, p := range s.Packages[comp+"/"+arch] {
				n, v := SourceOf(p)
				if k := n + " " + v; !wanted[k] {
					wanted[k] = true
					order = append(order, k)
				}
			}
		}
	}
	for _, k := range order {
		n, v, _ := strings.Cut(k, " ")
		l, ok := index[k]
		if !ok {
			reject(n+" (source)", fmt.Sprintf("source package %s %s is not in the Sources indexes of suite %s", n, v, s.Name))
			continue
		}
		verdict := policy.Decide(cfg.Name+":"+n, ev)
		if !verdict.Accepted {
			reject(n+" (source)", fmt.Sprintf("%s%s: %v", dists, s.Signed[len(s.Signed)-1].Path, verdict.Err))
			continue
		}
		if i := slices.IndexFunc(l.src.Files, func(f SourceFile) bool { return twice.files[l.src.Path(f)] }); i >= 0 {
			reject(n+" (source)", fmt.Sprintf("%s is listed twice with different hashes or sizes in the index %s", l.src.Path(l.src.Files[i]), l.idx.Path))
			continue
		}
		for _, f := range l.src.Files {
			fn := l.src.Path(f)
			if d, ok := debs[fn]; ok {
				if d.SHA256 != f.SHA256 || d.Size != f.Size {
					reject(n+" (source)", fmt.Sprintf("%s is listed with two different hashes or sizes", fn))
				}
				continue
			}
			d := &Deb{Name: n, Version: v, Architecture: "source", Filename: fn, Size: f.Size, SHA256: f.SHA256, Keys: mergeKeys(nil, verdict.Passed)}
			d.Evidence = append(append(d.Evidence, relEvidence...), l.idx)
			debs[fn] = d
		}
		s.Sources[l.comp] = append(s.Sources[l.comp], l.src)
	}
	return "", nil
}

func indexOf(all []Package, p *Package) int {
	for i := range all {
		if &all[i] == p {
			return i
		}
	}
	panic("apt: package not in its universe")
}

func mergeKeys(have []string, refs []verify.KeyRef) []string {
	for _, r := range refs {
		dup := false
		for _, h := range have {
			dup = dup || h == r.Name
		}
		if !dup {
			have = append(have, r.Name)
		}
	}
	return have
}

// getIndex fetches an index (by hash when the release offers it, the plain
// path when the by-hash copy is missing) and checks it against the
// release; why is set when it fails the check.
func getIndex(ctx context.Context, get Getter, dists string, rel *Release, idx string, fs FileSum) (data []byte, why string, err error) {
	if fs.Size > MaxIndexSize {
		return nil, fmt.Sprintf("%s%s: %v: the release says %d bytes, over %d", dists, idx, ErrLimit, fs.Size, MaxIndexSize), nil
	}
	where := idx
	if rel.AcquireByHash {
		where = ByHash(idx, fs.SHA256)
	}
	data, err = get(ctx, Request{Path: dists + where, Max: fs.Size, SHA256: fs.SHA256})
	if err != nil && where != idx && errors.Is(err, fetch.ErrNotFound) {
		where = idx
		data, err = get(ctx, Request{Path: dists + where, Max: fs.Size, SHA256: fs.SHA256})
	}
	if errors.Is(err, fetch.ErrTooLarge) {
		return nil, fmt.Sprintf("%s%s: %v: larger than the %d bytes the release says", dists, where, ErrHash, fs.Size), nil
	}
	if errors.Is(err, fetch.ErrNotFound) {
		return nil, fmt.Sprintf("%s%s: listed in the release but missing upstream", dists, where), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s%s: %w", dists, where, err)
	}
	if int64(len(data)) != fs.Size || sum256(data) != fs.SHA256 {
		return nil, fmt.Sprintf("%s%s: %v: %d bytes, SHA-256 %s; the release says %d bytes, %s", dists, where, ErrHash, len(data), sum256(data), fs.Size, fs.SHA256), nil
	}
	return data, "", nil
}

// keepVariants adds, for an unfiltered mirror that keeps the upstream's
// signature, every other compression of the index that the release lists
// and the upstream serves (apt picks among them).
func keepVariants(ctx context.Context, get Getter, dists string, rel *Release, dir string, names []string, have string, s *Suite) error {
	for _, n := range names {
		p := dir + n
		fs, ok := rel.Files[p]
		if !ok || p == have {
			continue
		}
		data, why, err := getIndex(ctx, get, dists, rel, p, fs)
		if err != nil {
			return err
		}
		if why != "" {
			// Debian lists an uncompressed Packages it does not serve;
			// a variant that is missing or wrong is simply not kept.
			continue
		}
		s.Indexes = append(s.Indexes, File{Path: p, Data: data})
	}
	return nil
}

// decompress returns the Packages text of an index, bounded by
// MaxPackagesSize.
func decompress(name string, data []byte) ([]byte, error) {
	var r io.Reader
	switch {
	case strings.HasSuffix(name, ".xz"):
		x, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: xz: %v", ErrControl, err)
		}
		r = x
	case strings.HasSuffix(name, ".gz"):
		g, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrControl, err)
		}
		r = g
	default:
		if int64(len(data)) > MaxPackagesSize {
			return nil, fmt.Errorf("%w: larger than %d bytes", ErrLimit, MaxPackagesSize)
		}
		return data, nil
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxPackagesSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %v", ErrControl, err)
	}
	if int64(len(out)) > MaxPackagesSize {
		return nil, fmt.Errorf("%w: decompressed larger than %d bytes", ErrLimit, MaxPackagesSize)
	}
	return out, nil
}

// evidencePath is where an upstream release file or index of suite goes
// in the publish tree: at its own path when the upstream's signature is
// kept, else under SOURCE/_upstream/ (for audit; clients use the
// operator-signed files at the real paths).
func (c *Config) evidencePath(suite, rel string) string {
	if c.KeepUpstreamSignatures {
		return c.PublishPath("dists/" + suite + "/" + rel)
	}
	return c.PublishPath(UpstreamDir + "/dists/" + suite + "/" + rel)
}

// UpstreamDir is the folder (under the source's) that holds the upstream's
// own release files and indexes when the mirror republishes its own.
const UpstreamDir = "_upstream"

// UpstreamFiles returns the upstream's release files and indexes with their
// publish paths: under SOURCE/_upstream/ for a filtered mirror (audit
// evidence), at their real paths (and by-hash paths when the release
// offers them) when keep_upstream_signatures is set.
func (sel *Selection) UpstreamFiles() []File {
	var out []File
	for _, s := range sel.Suites {
		for _, f := range append(append([]File{}, s.Signed...), s.Indexes...) {
			out = append(out, File{Path: sel.Config.evidencePath(s.Name, f.Path), Data: f.Data})
		}
		if sel.Config.KeepUpstreamSignatures && s.Release.AcquireByHash {
			for _, f := range s.Indexes {
				out = append(out, File{Path: sel.Config.evidencePath(s.Name, ByHash(f.Path, sum256(f.Data))), Data: f.Data})
			}
		}
	}
	return out
}

// twice collects the files that one index lists with two different
// hashes or sizes: such an index proves nothing about them (import
// --recheck refuses them), so every name they are listed under is left
// out, whichever comes first.
type twice struct {
	seen  map[string]FileSum // in the index being read
	files map[string]bool
}

func newTwice() *twice { return &twice{files: map[string]bool{}} }

// index starts the next index.
func (t *twice) index() { t.seen = map[string]FileSum{} }

func (t *twice) add(path string, fs FileSum) {
	if prev, ok := t.seen[path]; ok && prev != fs {
		t.files[path] = true
	}
	t.seen[path] = fs
}
