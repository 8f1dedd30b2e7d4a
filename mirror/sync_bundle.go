package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/mirror-tool/mirror/bundle"
)

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// manifest builds the manifest of the WHOLE accepted package set and
// publish tree and the digest that tells whether anything changed since the
// last bundle. Blobs is left nil: the caller sets it from treeBlobs(Tree),
// narrowed for a delta, once it knows that a bundle is made (a run with
// nothing new never sorts the blobs).
func (r *run) manifest(items []*item, res *SyncResult, trustText string) (*bundle.Manifest, string, error) {
	m := &bundle.Manifest{
		Created:     r.now.UTC(),
		Expires:     r.now.UTC().Add(r.cfg.Output.Expires.D()),
		ToolVersion: r.opt.ToolVersion,
		Trust:       bundle.Trust{SHA256: r.trustSHA, File: trustText},
		Packages:    make([]bundle.Package, 0, len(items)),
		Rejected:    []bundle.Rejected{},
	}
	if m.ToolVersion == "" {
		m.ToolVersion = "dev"
	}
	for _, s := range r.cfg.Sources {
		m.Sources = append(m.Sources, bundle.Source{Name: s.Name, Type: s.Type, URL: s.URL})
	}
	// The publish tree is collected as a list and sorted; a path that
	// comes twice must name the same file (checked on neighbours after the
	// sort, instead of a 40,000-entry map on 20,000 packages). Items come
	// in listing order, mostly sorted already.
	tree := make([]bundle.Entry, 0, 2*len(items))
	// Every package's signatures are carved from one array (capped, so
	// that no append reaches a neighbour's) instead of 20,000 small ones.
	nsigs := 0
	for _, it := range items {
		nsigs += len(it.sigs) + len(listSigs(it))
	}
	sigBuf := make([]bundle.PackageSignature, 0, nsigs)
	for _, it := range items {
		if it.kept != nil {
			m.Packages = append(m.Packages, it.kept.pkg)
			tree = append(tree, it.kept.tree...)
			continue
		}
		if it.rejected != "" || it.fileSHA == "" {
			continue
		}
		pkg := bundle.Package{Source: it.src.Name, Name: it.pkg.Name, Path: it.pkg.Path, Size: it.fileSize,
			SHA256: it.fileSHA, Keys: it.keys}
		tree = append(tree, bundle.Entry{Path: pkg.Path, SHA256: pkg.SHA256, Size: pkg.Size})
		first := len(sigBuf)
		sigBuf = append(sigBuf, listSigs(it)...)
		for _, s := range it.sigs {
			sigBuf = append(sigBuf, bundle.PackageSignature{Path: s.path, SHA256: s.sha, Scheme: sigScheme(it.schemes, s.url)})
			tree = append(tree, bundle.Entry{Path: s.path, SHA256: s.sha, Size: s.size})
		}
		pkg.Signatures = sigBuf[first:len(sigBuf):len(sigBuf)]
		m.Packages = append(m.Packages, pkg)
	}
	for _, x := range r.extras {
		if *x.used {
			tree = append(tree, bundle.Entry{Path: x.path, SHA256: x.sha, Size: x.size})
		}
	}
	for _, p := range res.Packages {
		if p.Status == StatusRejected {
			m.Rejected = append(m.Rejected, bundle.Rejected{Source: p.Source, Name: clipText(p.Name), Reason: clipText(p.Reason)})
		}
	}
	slices.SortFunc(m.Packages, func(a, b bundle.Package) int { return strings.Compare(a.Path, b.Path) })
	var err error
	if m.Tree, err = uniqueTree(tree); err != nil {
		return nil, "", err
	}

	return m, setDigest(m.Sources, m.Trust.SHA256, m.Packages, m.Tree), nil
}

// listSigs is the checksum list (and its signature) an item was taken
// from, as package signatures; nil for detached signatures only.
func listSigs(it *item) []bundle.PackageSignature {
	if it.fromList == nil {
		return nil
	}
	return it.fromList.sigs
}

// uniqueTree sorts the publish tree by path and drops a path's repeats,
// which must name the same file (ErrSync otherwise). It sorts in place.
func uniqueTree(tree []bundle.Entry) ([]bundle.Entry, error) {
	slices.SortFunc(tree, func(a, b bundle.Entry) int { return strings.Compare(a.Path, b.Path) })
	out := tree[:0]
	for _, e := range tree {
		if n := len(out); n > 0 && out[n-1].Path == e.Path {
			if out[n-1].SHA256 != e.SHA256 || out[n-1].Size != e.Size {
				return nil, fmt.Errorf("%w: two different files for publish path %s", ErrSync, e.Path)
			}
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// treeBlobs is the blobs a publish tree needs: each SHA-256 once, sorted.
func treeBlobs(tree []bundle.Entry) []bundle.Blob {
	blobs := make([]bundle.Blob, len(tree))
	for i, e := range tree {
		blobs[i] = bundle.Blob{SHA256: e.SHA256, Size: e.Size}
	}
	slices.SortFunc(blobs, func(a, b bundle.Blob) int { return strings.Compare(a.SHA256, b.SHA256) })
	return slices.CompactFunc(blobs, func(a, b bundle.Blob) bool { return a.SHA256 == b.SHA256 })
}

// digestFields is what setDigest hashes: the JSON of this struct.
type digestFields struct {
	Sources  []bundle.Source
	Trust    string
	Packages []bundle.Package
	Tree     []bundle.Entry
}

// setDigest returns the SHA-256 (hex) of the JSON encoding of digestFields
// (what the state's Digest has always held). The encoding is appended by
// hand, element by element into one reused buffer, instead of through
// encoding/json's reflection: a no-op run of 20,000 packages computes it
// only to compare it with the state's. TestSetDigestIsJSON and
// FuzzSetDigestIsJSON check that the bytes are json.Marshal's.
func setDigest(sources []bundle.Source, trust string, pkgs []bundle.Package, tree []bundle.Entry) string {
	h := sha256.New()
	b := make([]byte, 0, 4096)
	flush := func(b []byte) []byte {
		if len(b) >= 3072 {
			h.Write(b)
			b = b[:0]
		}
		return b
	}
	b = append(b, `{"Sources":`...)
	b = appendJSONArray(b, sources, appendSourceJSON, flush)
	b = append(b, `,"Trust":`...)
	b = appendJSONString(b, trust)
	b = append(b, `,"Packages":`...)
	b = appendJSONArray(b, pkgs, appendPackageJSON, flush)
	b = append(b, `,"Tree":`...)
	b = appendJSONArray(b, tree, appendEntryJSON, flush)
	b = append(b, '}')
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// appendPackageJSON appends json.Marshal(p) (field order and names of
// bundle.Package's tags, nil slices as null).
func appendPackageJSON(b []byte, p *bundle.Package) []byte {
	b = append(b, `{"source":`...)
	b = appendJSONString(b, p.Source)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, p.Name)
	b = append(b, `,"version":`...)
	b = appendJSONString(b, p.Version)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, p.Path)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, p.Size, 10)
	b = append(b, `,"sha256":`...)
	b = appendJSONString(b, p.SHA256)
	b = append(b, `,"signatures":`...)
	b = appendJSONArray(b, p.Signatures, appendSignatureJSON, nil)
	b = append(b, `,"keys":`...)
	b = appendJSONArray(b, p.Keys, func(b []byte, k *string) []byte { return appendJSONString(b, *k) }, nil)
	return append(b, '}')
}

// appendJSONArray appends xs as json.Marshal writes a slice (null when nil),
// each element by elem; after each element b passes through flush, when
// set.
func appendJSONArray[T any](b []byte, xs []T, elem func([]byte, *T) []byte, flush func([]byte) []byte) []byte {
	if xs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, &xs[i])
		if flush != nil {
			b = flush(b)
		}
	}
	return append(b, ']')
}

// appendSourceJSON appends json.Marshal(s).
func appendSourceJSON(b []byte, s *bundle.Source) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, s.Name)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, s.Type)
	b = append(b, `,"url":`...)
	b = appendJSONString(b, s.URL)
	return append(b, '}')
}

// appendSignatureJSON appends json.Marshal(s).
func appendSignatureJSON(b []byte, s *bundle.PackageSignature) []byte {
	b = append(b, `{"path":`...)
	b = appendJSONString(b, s.Path)
	b = append(b, `,"sha256":`...)
	b = appendJSONString(b, s.SHA256)
	b = append(b, `,"scheme":`...)
	b = appendJSONString(b, s.Scheme)
	return append(b, '}')
}

// appendEntryJSON appends json.Marshal(e).
func appendEntryJSON(b []byte, e *bundle.Entry) []byte {
	b = append(b, `{"path":`...)
	b = appendJSONString(b, e.Path)
	b = append(b, `,"sha256":`...)
	b = appendJSONString(b, e.SHA256)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, e.Size, 10)
	return append(b, '}')
}

// appendJSONString appends s quoted as json.Marshal quotes it. Printable
// ASCII other than the characters encoding/json escapes ("\<>&) is copied
// as it is; any other string is left to encoding/json itself, so that
// control characters, HTML escaping, U+2028/U+2029 and invalid UTF-8 come
// out exactly as before.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
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

// sigScheme is the scheme of the signature fetched from u for the
// manifest: the one its verdict's schemes (signature file name -> scheme)
// name, or else schemeByName's guess.
func sigScheme(schemes map[string]string, u string) string {
	if s := schemes[sigName(u)]; s != "" {
		return s
	}
	return schemeByName(u)
}

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
