package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/mirror-tool/mirror/internal/minisign"
	"strings"
)

// Member names, in this order, then blobs/<sha256> for each blob.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.json.minisig"
	ReadmeName    = "README"
	SumsName      = "SHA256SUMS"
	BlobDir       = "blobs/"
)

// readme is the README member: how to check the bundle with stock tools. It
// depends only on the manifest, so a reader can rebuild and compare it.
func readme(m *Manifest) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `This is a mirror bundle (%s) made by mirror %s.

  bundle id:        %s
  sequence:         %d (base %d; 0 means a full bundle)
  created:          %s
  expires:          %s
  operator key id:  %s
  blobs:            %d (%d bytes)

Check it with stock tools, given the operator's public key operator.pub
(obtained out of band):

  minisign -Vm NAME.tar.zst -p operator.pub     # the whole file (NAME.tar.zst.minisig)
  mkdir x && tar --zstd -xf NAME.tar.zst -C x && cd x
  minisign -Vm manifest.json -p ../operator.pub # the manifest, signed by the operator
  sha256sum -c SHA256SUMS                       # README, manifest and every blob

A split bundle (NAME.tar.zst.part-001, ...) is joined first; each part has a
4096-byte signed header to drop:

  for p in NAME.tar.zst.part-*; do tail -c +4097 "$p"; done > NAME.tar.zst

manifest.json lists every package, where it is published (tree) and which
blob (blobs/<sha256>) holds its bytes. A valid signature means: the operator
bundled exactly these files. It says nothing about whether the code is safe.
`, Format, m.ToolVersion, m.ID, m.Sequence, m.BaseSequence,
		m.Created.UTC().Format("2006-01-02T15:04:05Z"), m.Expires.UTC().Format("2006-01-02T15:04:05Z"),
		m.OperatorKeyID, len(m.Blobs), m.TotalBlobSize())
	return []byte(b.String())
}

// sumsHeader returns the SHA256SUMS lines before the blobs: the manifest,
// its signature and the README. The blob lines follow, one per blob, in
// manifest order (sumsLine).
func sumsHeader(manifest, sig, readme []byte) []byte {
	var b strings.Builder
	for _, m := range []struct {
		name string
		data []byte
	}{{ManifestName, manifest}, {SignatureName, sig}, {ReadmeName, readme}} {
		s := sha256.Sum256(m.data)
		b.WriteString(sumsLine(hex.EncodeToString(s[:]), m.name))
	}
	return []byte(b.String())
}

// sumsLine is one line of sha256sum output (text mode: two spaces).
func sumsLine(sum, name string) string { return sum + "  " + name + "\n" }

// sumsSize is the exact size of SHA256SUMS for a manifest.
func sumsSize(m *Manifest) int64 {
	n := int64(len(sumsLine(strings.Repeat("0", 64), ManifestName)) +
		len(sumsLine(strings.Repeat("0", 64), SignatureName)) +
		len(sumsLine(strings.Repeat("0", 64), ReadmeName)))
	n += int64(len(m.Blobs)) * int64(len(sumsLine(strings.Repeat("0", 64), BlobDir+strings.Repeat("0", 64))))
	return n
}

// manifestComment is the trusted comment of the manifest signature.
func manifestComment(m *Manifest) string {
	return fmt.Sprintf("%s manifest id=%s sequence=%d", Format, m.ID, m.Sequence)
}

// untrustedComment is the untrusted comment of every signature a bundle
// carries (manifest, part headers, the detached file signature). Readers
// require it exactly, so no byte of a bundle is free to change.
func untrustedComment(id minisign.KeyID) string {
	return "signature from mirror operator key " + id.String()
}

// fileComment is the trusted comment of the detached whole-file signature.
func fileComment(m *Manifest, file string) string {
	return fmt.Sprintf("%s file=%s id=%s sequence=%d", Format, file, m.ID, m.Sequence)
}
