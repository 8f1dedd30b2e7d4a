package verify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

// VerifyClearsigned checks an OpenPGP clearsigned document (SHA256SUMS.asc,
// InRelease) and returns its plaintext with the evidence. The plaintext is
// returned whatever the evidence says: use it only after Decide accepts (or
// call CheckClearsigned). A document larger than MaxClearsignedSize, with
// text outside the signed block, or that is not clearsigned is an error
// wrapping ErrMalformed.
func (p *Policy) VerifyClearsigned(ctx context.Context, doc []byte, now time.Time) (plaintext []byte, ev *Evidence, err error) {
	block, err := decodeClearsigned(doc)
	if err != nil {
		return nil, nil, err
	}
	sig, err := io.ReadAll(io.LimitReader(block.ArmoredSignature.Body, MaxSignatureSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: signature block: %v", ErrMalformed, err)
	}
	ev, err = p.Verify(ctx, bytes.NewReader(block.Bytes), []Signature{{Name: "clearsigned signature", Data: sig}}, now)
	if err != nil {
		return nil, nil, err
	}
	return block.Plaintext, ev, nil
}

// ClearsignedText returns the plaintext of a clearsigned document exactly
// as VerifyClearsigned decodes it (dash-escaping undone, line endings
// canonical), without checking the signature: only for a document that was
// verified before, such as a release read back from the cache to compare
// its fields with a newer one. Errors are those of VerifyClearsigned for a
// malformed document.
func ClearsignedText(doc []byte) ([]byte, error) {
	block, err := decodeClearsigned(doc)
	if err != nil {
		return nil, err
	}
	return block.Plaintext, nil
}

// decodeClearsigned decodes a clearsigned document and refuses one that is
// too large, has text outside the signed block or no signature block.
func decodeClearsigned(doc []byte) (*clearsign.Block, error) {
	if len(doc) > MaxClearsignedSize {
		return nil, fmt.Errorf("%w: clearsigned document larger than %d bytes", ErrMalformed, MaxClearsignedSize)
	}
	block, rest := clearsign.Decode(doc)
	if block == nil {
		return nil, fmt.Errorf("%w: not an OpenPGP clearsigned document", ErrMalformed)
	}
	// Text before or after the signed block is refused: a reader could
	// mistake it for signed content. The document starts with the one
	// BEGIN line (after white space only): an earlier line that merely
	// holds it (after a tab, say) would let unsigned text stand in front
	// of the block the decoder takes, and gpg --verify still says "Good".
	begin := []byte("-----BEGIN PGP SIGNED MESSAGE-----")
	body := bytes.TrimLeft(doc, " \t\r\n")
	if !bytes.HasPrefix(body, begin) || bytes.Contains(body[len(begin):], append([]byte("\n"), begin...)) || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: text outside the clearsigned block", ErrMalformed)
	}
	if block.ArmoredSignature == nil || block.ArmoredSignature.Type != openpgp.SignatureType {
		return nil, fmt.Errorf("%w: clearsigned document without a signature block", ErrMalformed)
	}
	return block, nil
}

// CheckClearsigned is VerifyClearsigned then Decide for pkg; the plaintext
// is returned only when the verdict accepts it.
func (p *Policy) CheckClearsigned(ctx context.Context, pkg string, doc []byte, now time.Time) ([]byte, Verdict, error) {
	text, ev, err := p.VerifyClearsigned(ctx, doc, now)
	if err != nil {
		return nil, Verdict{}, err
	}
	v := p.Decide(pkg, ev)
	if !v.Accepted {
		return nil, v, nil
	}
	return text, v, nil
}
