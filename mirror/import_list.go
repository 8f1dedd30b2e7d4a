package mirror

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/mirror/source/files"
	"github.com/mirror-tool/mirror/mirror/store"
	"github.com/mirror-tool/mirror/verify"
)

// Schemes sync records for a package taken from a signed checksum list: the
// list itself ("sha256sums", followed by its detached signature), or a
// clearsigned list ("<scheme>-clearsigned").
const (
	schemeChecksums   = "sha256sums"
	suffixClearsigned = "-clearsigned"
)

// recheckList re-derives the verdict of a files-source package that came
// from a signed checksum list, the way sync reached it: the list's signature
// first, then the package's hash in the list, then the signer's scope for
// this package. ok is false when pkg was not taken from a list.
func recheckList(ctx context.Context, pol *verify.Policy, st *store.Store, pkg bundle.Package, at time.Time) (v verify.Verdict, ok bool, err error) {
	var doc, sig *bundle.PackageSignature
	clear := false
	for i := range pkg.Signatures {
		s := &pkg.Signatures[i]
		switch {
		case s.Scheme == schemeChecksums:
			doc = s
		case strings.HasSuffix(s.Scheme, suffixClearsigned):
			doc, clear = s, true
		default:
			sig = s
		}
	}
	if doc == nil {
		return verify.Verdict{}, false, nil
	}
	rel, found := strings.CutPrefix(doc.Path, pkg.Source+"/")
	if !found {
		return verify.Verdict{}, true, fmt.Errorf("checksum list %s is not under source %q", doc.Path, pkg.Source)
	}
	data, err := readBlob(st, doc, files.MaxChecksumsSize)
	if err != nil {
		return verify.Verdict{}, true, err
	}
	var plain []byte
	var ev *verify.Evidence
	if clear {
		plain, ev, err = pol.VerifyClearsigned(ctx, data, at)
	} else {
		if sig == nil {
			return verify.Verdict{}, true, fmt.Errorf("checksum list %s travels without its signature", doc.Path)
		}
		var sd []byte
		if sd, err = readBlob(st, sig, verify.MaxSignatureSize); err != nil {
			return verify.Verdict{}, true, err
		}
		plain = data
		ev, err = pol.Verify(ctx, bytes.NewReader(data), []verify.Signature{{Name: path.Base(sig.Path), Data: sd}}, at)
	}
	if err != nil {
		return verify.Verdict{}, true, fmt.Errorf("checksum list %s: %w", doc.Path, err)
	}
	dir := path.Dir(rel)
	if dir == "." {
		dir = ""
	}
	sums, err := files.ParseChecksums(plain, dir)
	if err != nil {
		return verify.Verdict{}, true, fmt.Errorf("checksum list %s: %w", doc.Path, err)
	}
	if got := sums[pkg.Name]; got != pkg.SHA256 {
		if got == "" {
			return verify.Verdict{}, true, fmt.Errorf("checksum list %s does not list %s", doc.Path, pkg.Name)
		}
		return verify.Verdict{}, true, fmt.Errorf("checksum list %s lists %s with sha256 %s, the bundle carries %s", doc.Path, pkg.Name, got, pkg.SHA256)
	}
	return pol.Decide(pkg.Source+":"+pkg.Name, ev), true, nil
}

// readBlob reads a small blob of the store, bounded by max.
func readBlob(st *store.Store, s *bundle.PackageSignature, max int64) ([]byte, error) {
	data, err := st.ReadAll(s.SHA256, max)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path, err)
	}
	return data, nil
}
