package bundle

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/mirror-tool/mirror/internal/minisign"
)

// CheckFileSignature verifies the detached signature NAME.tar.zst.minisig
// over the bytes of the bundle whose checked manifest is m: the file itself,
// or the joined payloads of its parts (given in any order; their headers and
// hashes are checked too). The signature lies beside the file (or beside
// part 1). It returns the signature's path; an error matching
// os.ErrNotExist when there is none, ErrSignature when it does not verify or
// names another bundle.
//
// Open does not need this: the manifest signature and the hashes cover all
// content, and the reader requires the canonical tar and frame layout. This
// is the same check as `minisign -Vm NAME.tar.zst`, for `mirror verify`.
func CheckFileSignature(ctx context.Context, paths []string, pub minisign.PublicKey, m *Manifest) (string, error) {
	if len(paths) == 0 {
		return "", fmt.Errorf("no bundle file given")
	}
	var raw io.Reader
	var sigPath string
	f, err := openFile(paths[0])
	if err != nil {
		return "", err
	}
	prefix := make([]byte, len(PartFormat)+1)
	n, _ := io.ReadFull(f, prefix)
	f.Close()
	if len(paths) == 1 && !isPartHeader(prefix[:n]) {
		f, err := openFile(paths[0])
		if err != nil {
			return "", err
		}
		defer f.Close()
		raw, sigPath = f, paths[0]+".minisig"
	} else {
		parts, err := openParts(paths, &pub)
		if err != nil {
			return "", err
		}
		pr := newPartReader(parts)
		defer pr.Close()
		raw, sigPath = pr, filepath.Join(filepath.Dir(parts[0].path), parts[0].h.Name+".minisig")
	}
	sf, err := openFile(sigPath)
	if err != nil {
		return sigPath, err
	}
	data, err := io.ReadAll(io.LimitReader(sf, minisign.MaxSignatureSize+1))
	sf.Close()
	if err != nil {
		return sigPath, err
	}
	sig, err := minisign.ParseSignature(data)
	if err != nil {
		return sigPath, fmt.Errorf("%s: %w: %v", sigPath, ErrMalformed, err)
	}
	if sig.UntrustedComment != untrustedComment(sig.KeyID) {
		return sigPath, fmt.Errorf("%s: %w: untrusted comment %q is not the one this format writes", sigPath, ErrMalformed, clip(sig.UntrustedComment))
	}
	tc := sig.TrustedComment
	if !strings.HasPrefix(tc, Format+" file=") || !strings.HasSuffix(tc, fmt.Sprintf(" id=%s sequence=%d", m.ID, m.Sequence)) {
		return sigPath, fmt.Errorf("%s: %w: trusted comment %q does not name bundle %s sequence %d", sigPath, ErrSignature, clip(tc), m.ID, m.Sequence)
	}
	v, err := pub.NewVerifier(sig)
	if err != nil {
		return sigPath, fmt.Errorf("%s: %w: %v", sigPath, ErrSignature, err)
	}
	if !sig.Prehashed {
		return sigPath, fmt.Errorf("%s: %w: legacy (non-prehashed) signature", sigPath, ErrSignature)
	}
	if _, err := io.Copy(v, &ctxReader{ctx: ctx, r: raw}); err != nil {
		return sigPath, err
	}
	if err := v.Verify(); err != nil {
		return sigPath, fmt.Errorf("%s: %w: the bundle's bytes do not match it: %v", sigPath, ErrSignature, err)
	}
	return sigPath, nil
}
