package apt

import (
	"bytes"
	"fmt"
	"time"
)

// SignedDate returns the Date field of a release file the caller verified
// before (an InRelease, clearsigned, or a plain Release), to compare a new
// release with one mirrored earlier. It does not check the signature. A
// release without a Date gives the zero time.
func SignedDate(doc []byte) (time.Time, error) {
	if len(doc) > MaxReleaseSize {
		return time.Time{}, fmt.Errorf("%w: release larger than %d bytes", ErrLimit, MaxReleaseSize)
	}
	text := doc
	if bytes.HasPrefix(doc, []byte("-----BEGIN PGP SIGNED MESSAGE-----")) {
		// The signed text starts after the armor headers' blank line and
		// ends at the signature; no field line starts with a dash, so
		// dash-escaping does not matter here.
		_, body, ok := bytes.Cut(doc, []byte("\n\n"))
		if !ok {
			return time.Time{}, fmt.Errorf("%w: clearsigned release without a body", ErrControl)
		}
		body, _, ok = bytes.Cut(body, []byte("\n-----BEGIN PGP SIGNATURE-----"))
		if !ok {
			return time.Time{}, fmt.Errorf("%w: clearsigned release without a signature", ErrControl)
		}
		text = body
	}
	rel, err := ParseRelease(text)
	if err != nil {
		return time.Time{}, err
	}
	return rel.Date, nil
}
