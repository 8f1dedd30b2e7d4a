package apt

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ulikunitz/xz"
)

// Signer signs the generated release: the operator's OpenPGP key
// (internal/operator.Key).
type Signer interface {
	ClearSign(w io.Writer, text []byte, now time.Time) error
	DetachSign(w io.Writer, r io.Reader, now time.Time) error
}

// Publish returns the files a client requests, with their publish paths
// (SOURCE/dists/...): with keep_upstream_signatures the upstream's own
// release files and indexes byte for byte; otherwise, per suite,
// component and architecture, Packages, Packages.gz and Packages.xz
// holding the upstream paragraphs of the packages accepted (accepted
// reports whether the file at that publish path, SOURCE/Filename, with
// that SHA-256 passed its check and is published: a paragraph whose own
// file was refused stays out even when another file has the same bytes), their by-hash copies, and a Release with their SHA-256 sums
// and sizes, clearsigned as InRelease and detach-signed as Release.gpg by
// signer at the time at. The output depends only on its inputs (gzip and
// xz without time stamps, Ed25519 signatures), so an unchanged selection
// publishes identical bytes.
func Publish(sel *Selection, accepted func(path, sha256 string) bool, signer Signer, at time.Time) ([]File, error) {
	if sel.Config.KeepUpstreamSignatures {
		return sel.UpstreamFiles(), nil
	}
	var out []File
	for _, s := range sel.Suites {
		files, err := publishSuite(sel.Config, s, accepted, signer, at)
		if err != nil {
			return nil, fmt.Errorf("suite %s: %w", s.Name, err)
		}
		out = append(out, files...)
	}
	return out, nil
}

func publishSuite(cfg *Config, s *Suite, accepted func(path, sha256 string) bool, signer Signer, at time.Time) ([]File, error) {
	dists := "dists/" + s.Name + "/"
	var out []File
	var sums strings.Builder
	add := func(rel string, data []byte) {
		out = append(out, File{Path: cfg.PublishPath(dists + rel), Data: data})
	}
	for _, comp := range s.Components {
		for _, arch := range s.Architectures {
			var plain bytes.Buffer
			for _, p := range s.Packages[comp+"/"+arch] {
				if !accepted(cfg.PublishPath(p.Filename), p.SHA256) {
					continue
				}
				appendParagraph(&plain, p.Paragraph.Raw)
			}
			if err := addIndex(comp+"/binary-"+arch+"/Packages", plain.Bytes(), &sums, add); err != nil {
				return nil, err
			}
		}
	}
	if cfg.SourcePackages {
		for _, comp := range s.Components {
			var plain bytes.Buffer
			for _, sp := range s.Sources[comp] {
				ok := true
				for _, f := range sp.Files {
					ok = ok && accepted(cfg.PublishPath(sp.Path(f)), f.SHA256)
				}
				if !ok {
					continue
				}
				appendParagraph(&plain, sp.Paragraph.Raw)
			}
			if err := addIndex(comp+"/source/Sources", plain.Bytes(), &sums, add); err != nil {
				return nil, err
			}
		}
	}
	rel := ReleaseText(s, at, sums.String())
	var in bytes.Buffer
	if err := signer.ClearSign(&in, rel, at); err != nil {
		return nil, fmt.Errorf("sign InRelease: %w", err)
	}
	var gpg bytes.Buffer
	if err := signer.DetachSign(&gpg, bytes.NewReader(rel), at); err != nil {
		return nil, fmt.Errorf("sign Release.gpg: %w", err)
	}
	add("Release", rel)
	add("Release.gpg", gpg.Bytes())
	add("InRelease", in.Bytes())
	return out, nil
}

// appendParagraph adds one control paragraph to an index being built: a
// blank line before it unless it is the first, and a final newline.
func appendParagraph(b *bytes.Buffer, raw []byte) {
	if b.Len() > 0 {
		b.WriteByte('\n')
	}
	b.Write(raw)
	if n := len(raw); n == 0 || raw[n-1] != '\n' {
		b.WriteByte('\n')
	}
}

// addIndex adds an index as plain, gz and xz, each with its by-hash copy
// and its line in the release's SHA256 list.
func addIndex(rel string, plain []byte, sums *strings.Builder, add func(string, []byte)) error {
	gz, err := gzipBytes(plain)
	if err != nil {
		return err
	}
	xzb, err := xzBytes(plain)
	if err != nil {
		return err
	}
	for _, f := range []File{{rel, plain}, {rel + ".gz", gz}, {rel + ".xz", xzb}} {
		sum := sum256(f.Data)
		fmt.Fprintf(sums, " %s %8d %s\n", sum, len(f.Data), f.Path)
		add(f.Path, f.Data)
		add(ByHash(f.Path, sum), f.Data)
	}
	return nil
}

// ReleaseText builds the generated Release of suite s: the upstream's
// descriptive fields (Origin, Label, Suite, Codename, Version,
// Description), Date at, the configured Architectures and Components,
// Acquire-By-Hash: yes and the SHA256 list sums (lines " sum size path").
// There is no Valid-Until: the bundle's own expiry bounds the mirror's age.
func ReleaseText(s *Suite, at time.Time, sums string) []byte {
	var b strings.Builder
	for _, f := range []string{"Origin", "Label", "Suite", "Codename", "Version"} {
		if v := s.Release.Paragraph.Value(f); v != "" && !strings.Contains(v, "\n") {
			fmt.Fprintf(&b, "%s: %s\n", f, v)
		}
	}
	fmt.Fprintf(&b, "Date: %s\n", FormatDate(at))
	fmt.Fprintf(&b, "Architectures: %s\n", strings.Join(s.Architectures, " "))
	fmt.Fprintf(&b, "Components: %s\n", strings.Join(s.Components, " "))
	b.WriteString("Description: filtered mirror, signed by the mirror operator\n")
	b.WriteString("Acquire-By-Hash: yes\n")
	b.WriteString("SHA256:\n")
	b.WriteString(sums)
	return []byte(b.String())
}

// Date returns the latest Date of the selection's upstream releases (zero
// when none has one): a deterministic time to sign the generated indexes
// at.
func (sel *Selection) Date() time.Time {
	var t time.Time
	for _, s := range sel.Suites {
		if s.Release.Date.After(t) {
			t = s.Release.Date
		}
	}
	return t
}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// xzBytes compresses b with a dictionary no larger than b (from 64 KiB
// to xz's default 8 MiB): the default allocates some 25 MiB per writer,
// which dominated the peak memory of a sync.
func xzBytes(b []byte) ([]byte, error) {
	dict := 64 << 10
	for dict < len(b) && dict < 8<<20 {
		dict <<= 1
	}
	var buf bytes.Buffer
	w, err := xz.WriterConfig{DictCap: dict}.NewWriter(&buf)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
