package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"runtime"
	"slices"
	"strings"

	"github.com/mirror-tool/mirror/bundle"
)

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// manifest builds the manifest of the WHOLE accepted package set and
// publish tree (Blobs lists every blob the tree needs; the caller narrows it
// for a delta) and the digest that tells whether anything changed since the
// last bundle.
func (r *run) manifest(items []*item, res *SyncResult, trustText string) (*bundle.Manifest, string, error) {
	m := &bundle.Manifest{
		Created:     r.now.UTC(),
		Expires:     r.now.UTC().Add(r.cfg.Output.Expires.D()),
		ToolVersion: r.opt.ToolVersion,
		Trust:       bundle.Trust{SHA256: sha256Hex([]byte(trustText)), File: trustText},
		Packages:    make([]bundle.Package, 0, len(items)),
		Tree:        make([]bundle.Entry, 0, 2*len(items)),
		Rejected:    []bundle.Rejected{},
	}
	if m.ToolVersion == "" {
		m.ToolVersion = "dev"
	}
	for _, s := range r.cfg.Sources {
		m.Sources = append(m.Sources, bundle.Source{Name: s.Name, Type: s.Type, URL: s.URL})
	}
	tree := make(map[string]bundle.Entry, 2*len(items))
	add := func(p, sum string, size int64) error {
		if old, ok := tree[p]; ok && (old.SHA256 != sum || old.Size != size) {
			return fmt.Errorf("%w: two different files for publish path %s", ErrSync, p)
		}
		tree[p] = bundle.Entry{Path: p, SHA256: sum, Size: size}
		return nil
	}
	for _, it := range items {
		if it.rejected != "" || it.fileSHA == "" {
			continue
		}
		pkg := bundle.Package{Source: it.src.Name, Name: it.pkg.Name, Path: it.pkg.Path, Size: it.fileSize,
			SHA256: it.fileSHA, Keys: it.keys, Signatures: []bundle.PackageSignature{}}
		if err := add(pkg.Path, pkg.SHA256, pkg.Size); err != nil {
			return nil, "", err
		}
		if it.fromList != nil {
			pkg.Signatures = append(pkg.Signatures, it.fromList.sigs...)
		}
		for _, s := range it.sigs {
			scheme := it.schemes[sigName(s.url)]
			if scheme == "" {
				scheme = schemeByName(s.url)
			}
			pkg.Signatures = append(pkg.Signatures, bundle.PackageSignature{Path: s.path, SHA256: s.sha, Scheme: scheme})
			if err := add(s.path, s.sha, int64(len(s.data))); err != nil {
				return nil, "", err
			}
		}
		m.Packages = append(m.Packages, pkg)
	}
	for _, x := range r.extras {
		if *x.used {
			if err := add(x.path, x.sha, x.size); err != nil {
				return nil, "", err
			}
		}
	}
	for _, p := range res.Packages {
		if p.Status == StatusRejected {
			m.Rejected = append(m.Rejected, bundle.Rejected{Source: p.Source, Name: clipText(p.Name), Reason: clipText(p.Reason)})
		}
	}
	slices.SortFunc(m.Packages, func(a, b bundle.Package) int { return strings.Compare(a.Path, b.Path) })
	sizes := make(map[string]int64, len(tree))
	for _, e := range tree {
		m.Tree = append(m.Tree, e)
		sizes[e.SHA256] = e.Size
	}
	slices.SortFunc(m.Tree, func(a, b bundle.Entry) int { return strings.Compare(a.Path, b.Path) })
	m.Blobs = make([]bundle.Blob, 0, len(sizes))
	for sum, size := range sizes {
		m.Blobs = append(m.Blobs, bundle.Blob{SHA256: sum, Size: size})
	}
	slices.SortFunc(m.Blobs, func(a, b bundle.Blob) int { return strings.Compare(a.SHA256, b.SHA256) })

	d, err := setDigest(m.Sources, m.Trust.SHA256, m.Packages, m.Tree)
	if err != nil {
		return nil, "", err
	}
	return m, d, nil
}

// digestFields is what setDigest hashes: the JSON of this struct.
type digestFields struct {
	Sources  []bundle.Source
	Trust    string
	Packages []bundle.Package
	Tree     []bundle.Entry
}

// setDigest returns the SHA-256 (hex) of the JSON encoding of digestFields
// (what the state's Digest has always held), hashing the encoding element
// by element instead of building it whole: on 20,000 packages the whole
// encoding is some MiB, built by doubling a buffer (TestSetDigestIsJSON
// checks that the bytes are the same).
func setDigest(sources []bundle.Source, trust string, pkgs []bundle.Package, tree []bundle.Entry) (string, error) {
	h := sha256.New()
	put := func(v any) error {
		b, err := json.Marshal(v)
		h.Write(b)
		return err
	}
	h.Write([]byte(`{"Sources":`))
	if err := put(sources); err != nil {
		return "", err
	}
	h.Write([]byte(`,"Trust":`))
	if err := put(trust); err != nil {
		return "", err
	}
	h.Write([]byte(`,"Packages":`))
	if err := putSlice(h, pkgs, put); err != nil {
		return "", err
	}
	h.Write([]byte(`,"Tree":`))
	if err := putSlice(h, tree, put); err != nil {
		return "", err
	}
	h.Write([]byte(`}`))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// putSlice writes a slice as encoding/json does (null when nil), one
// element at a time.
func putSlice[T any](w io.Writer, s []T, put func(any) error) error {
	if s == nil {
		_, err := w.Write([]byte("null"))
		return err
	}
	w.Write([]byte("["))
	for i := range s {
		if i > 0 {
			w.Write([]byte(","))
		}
		if err := put(&s[i]); err != nil {
			return err
		}
	}
	_, err := w.Write([]byte("]"))
	return err
}

// clipText keeps a manifest text field within the format's limit.
func clipText(s string) string {
	if len(s) <= bundle.MaxTextLen {
		return s
	}
	s = s[:bundle.MaxTextLen-3]
	for len(s) > 0 && !isRuneStart(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return strings.ToValidUTF8(s, "") + "..."
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// schemeByName guesses a signature's scheme from its file name when no
// trusted key identified it (the manifest still records the file).
func schemeByName(u string) string {
	switch path.Ext(sigName(u)) {
	case ".minisig":
		return "minisign"
	case ".asc", ".gpg", ".sig", ".sign":
		return "openpgp"
	}
	return "unknown"
}
