package apt

import (
	"bytes"
	"fmt"
	"time"

	"github.com/mirror-tool/mirror/verify"
)

// SignedDate returns the Date field of a release file the caller verified
// before (an InRelease, clearsigned, or a plain Release), to compare a new
// release with one mirrored earlier. It does not check the signature, but
// decodes a clearsigned release with the verifier's own decoder
// (verify.ClearsignedText): any copy that passed the signature check reads
// back as the text that was checked, whatever its line endings or dash
// escapes. A release without a Date gives the zero time.
func SignedDate(doc []byte) (time.Time, error) {
	if len(doc) > MaxReleaseSize {
		return time.Time{}, fmt.Errorf("%w: release larger than %d bytes", ErrLimit, MaxReleaseSize)
	}
	text := doc
	if bytes.HasPrefix(bytes.TrimLeft(doc, " \t\r\n"), []byte("-----BEGIN PGP SIGNED MESSAGE-----")) {
		plain, err := verify.ClearsignedText(doc)
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: %v", ErrControl, err)
		}
		text = plain
	}
	rel, err := ParseRelease(text)
	if err != nil {
		return time.Time{}, err
	}
	return rel.Date, nil
}
