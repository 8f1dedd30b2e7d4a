package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mirror-tool/mirror/internal/atomicfile"
	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/verify"
)

// AptSigDir is the folder of the state that keeps the operator's
// signatures of generated apt releases (aptSigner).
const AptSigDir = "aptsig"

// maxAptSig bounds a kept signature file (an InRelease is the release text
// and a signature block; the text is bounded by what it lists).
const maxAptSig = 64 << 20

// aptSigner signs the generated apt releases of a run with the operator's
// OpenPGP key, reusing the signatures an earlier run made of the same text
// at the same time: an unchanged apt source then needs neither the key's
// decryption (scrypt, a passphrase) nor the terminal on a run with nothing
// new. The signatures are deterministic, so a reused one is the bytes a new
// signing would give. A kept signature is used only after it verifies with
// the operator's public key (operator.asc) over exactly this text: a file
// written into the state folder by someone else cannot put anything the
// key did not sign into a bundle.
type aptSigner struct {
	dir     string
	policy  *verify.Policy // the operator's public key, allowed for every name
	fpr     string         // SHA-256 of operator.asc: another key signs anew
	created time.Time      // the key's creation time
	key     func() (*operator.Key, error)
	now     time.Time
	used    map[string]bool
}

// newAptSigner reads the operator's public OpenPGP key (no passphrase).
func newAptSigner(r *run) (*aptSigner, error) {
	asc, created, err := operator.LoadArmoredPublic(r.cfg.Operator.Key)
	if err != nil {
		return nil, fmt.Errorf("operator key: %w", err)
	}
	p, err := verify.NewPolicy(verify.Config{Keys: []verify.KeyConfig{{Name: "operator", OpenPGP: string(asc), Allow: []string{"*"}}}}, "")
	if err != nil {
		return nil, fmt.Errorf("operator key: %s: %w", operator.AscFile, err)
	}
	return &aptSigner{dir: filepath.Join(r.cfg.Output.State, AptSigDir), policy: p, fpr: sha256Hex(asc), created: created,
		key: r.operatorKey, now: r.now, used: map[string]bool{}}, nil
}

// name is the file a signature of text at now is kept under.
func (s *aptSigner) name(kind string, text []byte, now time.Time) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", kind, s.fpr, now.Unix())
	h.Write(text)
	return hex.EncodeToString(h.Sum(nil))
}

// kept returns the signature kept under name, if there is one that check
// accepts.
func (s *aptSigner) kept(name string, check func([]byte) bool) ([]byte, bool) {
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, maxAptSig+1))
	if err != nil || len(b) > maxAptSig || !check(b) {
		return nil, false
	}
	return b, true
}

// keep stores a new signature under name. A failure only costs a signing
// next time.
func (s *aptSigner) keep(name string, b []byte) {
	if os.MkdirAll(s.dir, 0o755) == nil {
		atomicfile.WriteFile(filepath.Join(s.dir, name), b, 0o644)
	}
}

func (s *aptSigner) sign(kind string, text []byte, now time.Time, w io.Writer, check func([]byte) bool, make func(*operator.Key, *bytes.Buffer) error) error {
	name := s.name(kind, text, now)
	s.used[name] = true
	if b, ok := s.kept(name, check); ok {
		_, err := w.Write(b)
		return err
	}
	k, err := s.key()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := make(k, &b); err != nil {
		return err
	}
	s.keep(name, b.Bytes())
	_, err = w.Write(b.Bytes())
	return err
}

// ClearSign is operator.Key.ClearSign, or the kept InRelease of text.
func (s *aptSigner) ClearSign(w io.Writer, text []byte, now time.Time) error {
	check := func(b []byte) bool {
		plain, v, err := s.policy.CheckClearsigned(context.Background(), "operator:InRelease", b, s.now)
		return err == nil && v.Accepted && bytes.Equal(bytes.TrimSuffix(plain, []byte("\n")), bytes.TrimSuffix(text, []byte("\n")))
	}
	return s.sign("clearsign", text, now, w, check, func(k *operator.Key, b *bytes.Buffer) error { return k.ClearSign(b, text, now) })
}

// DetachSign is operator.Key.DetachSign, or the kept Release.gpg of the text
// r holds.
func (s *aptSigner) DetachSign(w io.Writer, r io.Reader, now time.Time) error {
	text, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	check := func(b []byte) bool {
		v, err := s.policy.Check(context.Background(), "operator:Release", bytes.NewReader(text), []verify.Signature{{Name: "Release.gpg", Data: b}}, s.now)
		return err == nil && v.Accepted
	}
	return s.sign("detach", text, now, w, check, func(k *operator.Key, b *bytes.Buffer) error { return k.DetachSign(b, bytes.NewReader(text), now) })
}

// sweep removes the kept signatures this run did not use (releases no
// longer generated).
func (s *aptSigner) sweep() error {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !s.used[e.Name()] {
			os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
	return nil
}
