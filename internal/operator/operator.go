// Package operator owns the operator key: the one Ed25519 key with which the
// internet side signs bundles (minisign) and apt indexes (OpenPGP), and
// whose public halves the air-gapped side pins.
//
// The key lives in three files, written together by Write (mirror keygen):
//
//	operator.key  the minisign secret key file (stock `minisign -S -s` reads
//	              it), encrypted with a passphrase unless asked otherwise; 0600
//	operator.pub  the minisign public key file, for bundles; 0644
//	operator.asc  the armored OpenPGP public key of the same Ed25519 key (a v4
//	              EdDSA primary key), for apt clients' signed-by; 0644
//
// An OpenPGP fingerprint covers the key's creation time, which the minisign
// file does not hold. operator.asc therefore travels with operator.key: Load
// reads the creation time from it, rebuilds the OpenPGP key from the secret,
// and checks that both fingerprints are equal, so the internet side always
// signs with the very key apt clients were given.
package operator

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/mirror-tool/mirror/internal/atomicfile"
	"github.com/mirror-tool/mirror/internal/minisign"
)

// File names inside a key directory (DESIGN.md "Keys").
const (
	KeyFile = "operator.key"
	PubFile = "operator.pub"
	AscFile = "operator.asc"
)

// Limits on the files this package reads.
const (
	// MaxArmoredSize bounds operator.asc.
	MaxArmoredSize = 64 << 10
	// MaxPassphraseSize bounds a passphrase file.
	MaxPassphraseSize = 4 << 10
)

var (
	// ErrPassphrase is returned when the passphrase does not open the key
	// (it is minisign.ErrPassphrase, so either matches).
	ErrPassphrase = minisign.ErrPassphrase
	// ErrMismatch is returned when operator.asc is not the OpenPGP form of
	// the key in operator.key.
	ErrMismatch = errors.New("operator.asc does not belong to this operator key")
	// ErrMalformedPublic is returned when operator.asc cannot be read as
	// the operator's OpenPGP public key.
	ErrMalformedPublic = errors.New("malformed operator OpenPGP public key")
)

// FileError is an error about one of the key files.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Key is the operator key with both of its public forms.
type Key struct {
	// Minisign is the secret key; Minisign.Public() is operator.pub.
	Minisign minisign.PrivateKey
	// Created is the OpenPGP key's creation time (whole seconds, UTC).
	Created time.Time

	entity *openpgp.Entity
	asc    []byte
}

// UserID returns the OpenPGP user id given to the operator key.
func UserID(id minisign.KeyID) string {
	return userName + " (" + userComment(id) + ")"
}

const userName = "mirror operator"

func userComment(id minisign.KeyID) string { return "minisign " + id.String() }

// Generate makes a new operator key from rand; its OpenPGP form is created
// at now (truncated to seconds).
func Generate(rand io.Reader, now time.Time) (*Key, error) {
	mk, err := minisign.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generate operator key: %w", err)
	}
	return fromMinisign(mk, now)
}

func fromMinisign(mk minisign.PrivateKey, created time.Time) (*Key, error) {
	e, err := newEntity(mk.Key, created, userName, userComment(mk.ID))
	if err != nil {
		return nil, err
	}
	asc, err := armoredPublic(e)
	if err != nil {
		return nil, fmt.Errorf("armor openpgp public key: %w", err)
	}
	return &Key{Minisign: mk, Created: e.PrimaryKey.CreationTime.UTC(), entity: e, asc: asc}, nil
}

// Public returns the minisign public key (operator.pub).
func (k *Key) Public() minisign.PublicKey { return k.Minisign.Public() }

// ArmoredPublic returns operator.asc: the armored OpenPGP public key.
func (k *Key) ArmoredPublic() []byte { return bytes.Clone(k.asc) }

// Fingerprint returns the OpenPGP fingerprint as 40 upper-case hex digits.
func (k *Key) Fingerprint() string { return fmt.Sprintf("%X", k.entity.PrimaryKey.Fingerprint) }

// Entity returns the OpenPGP entity (with its private key) for callers that
// need more than ClearSign and DetachSign. It must not be modified.
func (k *Key) Entity() *openpgp.Entity { return k.entity }

func (k *Key) signConfig(now time.Time) *packet.Config {
	deterministic := false
	return &packet.Config{
		DefaultHash: openpgpHash,
		Time:        func() time.Time { return now },
		// Ed25519 signatures are deterministic, as minisign's are; without
		// go-crypto's random salt notation the same inputs, key and time
		// give byte-identical indexes (and so byte-identical bundles).
		NonDeterministicSignaturesViaNotation: &deterministic,
	}
}

// ClearSign writes text clearsigned by the operator's OpenPGP key, with the
// signature made at now: the form of an apt InRelease file. As with
// `gpg --clearsign`, a final newline of text becomes the line break before
// the signature block, so `gpgv --output` gives back text exactly.
func (k *Key) ClearSign(w io.Writer, text []byte, now time.Time) error {
	text = bytes.TrimSuffix(text, []byte("\n"))
	var b bytes.Buffer
	pw, err := clearsign.Encode(&b, k.entity.PrivateKey, k.signConfig(now))
	if err != nil {
		return fmt.Errorf("clearsign with operator key: %w", err)
	}
	if _, err := pw.Write(text); err != nil {
		return fmt.Errorf("clearsign with operator key: %w", err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("clearsign with operator key: %w", err)
	}
	out, err := withArmorChecksum(b.Bytes())
	if err != nil {
		return fmt.Errorf("clearsign with operator key: %w", err)
	}
	_, err = w.Write(out)
	return err
}

// withArmorChecksum re-armors the signature block of a clearsigned message
// with the CRC-24 line. go-crypto leaves it out (RFC 9580 allows that), but
// GnuPG 2.2, which is apt's gpgv on Debian 12, then fails on the armor's
// last line ("invalid radix64 character") and rejects the file.
func withArmorChecksum(signed []byte) ([]byte, error) {
	const begin = "\n-----BEGIN PGP SIGNATURE-----"
	i := bytes.LastIndex(signed, []byte(begin))
	if i < 0 {
		return nil, errors.New("no signature block in clearsigned output")
	}
	block, err := armor.Decode(bytes.NewReader(signed[i+1:]))
	if err != nil {
		return nil, err
	}
	sig, err := io.ReadAll(block.Body)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(signed[:i+1])
	aw, err := armor.Encode(&b, block.Type, block.Header)
	if err != nil {
		return nil, err
	}
	if _, err := aw.Write(sig); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// DetachSign writes an armored detached OpenPGP signature of the message
// read from r, made at now: the form of an apt Release.gpg file.
func (k *Key) DetachSign(w io.Writer, r io.Reader, now time.Time) error {
	var b bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&b, k.entity, r, k.signConfig(now)); err != nil {
		return fmt.Errorf("sign with operator key: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// Write stores the key in dir as operator.key (encrypted with passphrase;
// nil writes it unencrypted), operator.pub and operator.asc. dir is created
// (0700) if missing. Write never replaces an existing file: if any of the
// three exists, it fails with an error matching fs.ErrExist and writes
// nothing. Either all three files are written or none.
func (k *Key) Write(dir string, passphrase []byte) error {
	secret, err := k.Minisign.MarshalPrivate(passphrase, rand.Reader)
	if err != nil {
		return fmt.Errorf("encode operator key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{KeyFile, secret, 0o600},
		{PubFile, k.Public().File(), 0o644},
		{AscFile, k.asc, 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if _, err := os.Lstat(p); err == nil {
			return &FileError{Path: p, Err: fmt.Errorf("refusing to overwrite an existing key file: %w", fs.ErrExist)}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return &FileError{Path: p, Err: err}
		}
	}
	var temps []*atomicfile.File
	defer func() {
		for _, t := range temps {
			t.Abort()
		}
	}()
	for _, f := range files {
		t, err := atomicfile.Create(filepath.Join(dir, f.name), f.perm)
		if err != nil {
			return err
		}
		temps = append(temps, t)
		if _, err := t.Write(f.data); err != nil {
			return err
		}
	}
	var committed []string
	for i, t := range temps {
		p := filepath.Join(dir, files[i].name)
		if err := t.CommitNew(); err != nil {
			for _, c := range committed {
				os.Remove(c)
			}
			if errors.Is(err, fs.ErrExist) {
				return &FileError{Path: p, Err: fmt.Errorf("refusing to overwrite an existing key file: %w", fs.ErrExist)}
			}
			return &FileError{Path: p, Err: err}
		}
		committed = append(committed, p)
	}
	return nil
}

// NeedsPassphrase reports whether the secret key file at keyPath is
// encrypted, so that a caller asks for a passphrase only when needed.
func NeedsPassphrase(keyPath string) (bool, error) {
	data, err := readLimited(keyPath, minisign.MaxPrivateKeySize)
	if err != nil {
		return false, err
	}
	enc, err := minisign.PrivateKeyEncrypted(data)
	if err != nil {
		return false, &FileError{Path: keyPath, Err: err}
	}
	return enc, nil
}

// Load reads the operator key from keyPath (decrypting it with passphrase
// when it is encrypted) and operator.asc from the same directory, and checks
// that operator.asc is the OpenPGP form of that key.
func Load(keyPath string, passphrase []byte) (*Key, error) {
	data, err := readLimited(keyPath, minisign.MaxPrivateKeySize)
	if err != nil {
		return nil, err
	}
	mk, err := minisign.ParsePrivateKey(data, passphrase)
	if err != nil {
		return nil, &FileError{Path: keyPath, Err: err}
	}
	ascPath, asc, pub, created, err := readAsc(keyPath)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pub, mk.Key.Public().(ed25519.PublicKey)) {
		return nil, &FileError{Path: ascPath, Err: fmt.Errorf("%w: its key material is another key's", ErrMismatch)}
	}
	k, err := fromMinisign(mk, created)
	if err != nil {
		return nil, err
	}
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(asc))
	if err != nil || len(el) != 1 || !bytes.Equal(el[0].PrimaryKey.Fingerprint, k.entity.PrimaryKey.Fingerprint) {
		return nil, &FileError{Path: ascPath, Err: fmt.Errorf("%w: fingerprint differs", ErrMismatch)}
	}
	k.asc = asc
	return k, nil
}

// readAsc reads and parses operator.asc beside the key file keyPath.
func readAsc(keyPath string) (ascPath string, asc []byte, pub ed25519.PublicKey, created time.Time, err error) {
	ascPath = filepath.Join(filepath.Dir(keyPath), AscFile)
	asc, err = readLimited(ascPath, MaxArmoredSize)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = &FileError{Path: ascPath, Err: fmt.Errorf("the OpenPGP public key written by keygen must stay beside %s: %w", filepath.Base(keyPath), err)}
		}
		return ascPath, nil, nil, time.Time{}, err
	}
	pub, created, err = readArmoredPublic(asc)
	if err != nil {
		return ascPath, nil, nil, time.Time{}, &FileError{Path: ascPath, Err: err}
	}
	return ascPath, asc, pub, created, nil
}

// LoadArmoredPublic reads operator.asc beside the key file keyPath, with
// no passphrase: the armored OpenPGP public key and its creation time (the
// time before which the key signs nothing).
func LoadArmoredPublic(keyPath string) (asc []byte, created time.Time, err error) {
	_, asc, _, created, err = readAsc(keyPath)
	return asc, created, err
}

// CheckPublic checks, without the passphrase (no decryption, no scrypt),
// what Load would refuse about the public files beside an encrypted key
// at keyPath: operator.asc missing or damaged, or, when operator.pub is
// beside it (keygen writes both), operator.asc holding another key than
// operator.pub (ErrMismatch). An encrypted minisign key file keeps even
// its key id encrypted, so a key file swapped for another key's still
// shows only when Load decrypts it.
func CheckPublic(keyPath string) error {
	ascPath, _, pub, _, err := readAsc(keyPath)
	if err != nil {
		return err
	}
	pk, err := LoadPublic(filepath.Join(filepath.Dir(keyPath), PubFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(pub, pk.Key) {
		return &FileError{Path: ascPath, Err: fmt.Errorf("%w: its key material is not the key in %s", ErrMismatch, PubFile)}
	}
	return nil
}

// LoadPublic reads a minisign public key file (operator.pub).
func LoadPublic(pubPath string) (minisign.PublicKey, error) {
	data, err := readLimited(pubPath, minisign.MaxSignatureSize)
	if err != nil {
		return minisign.PublicKey{}, err
	}
	pk, err := minisign.ParsePublicKey(data)
	if err != nil {
		return minisign.PublicKey{}, &FileError{Path: pubPath, Err: err}
	}
	return pk, nil
}

// readLimited reads a whole file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	if int64(len(data)) > limit {
		return nil, &FileError{Path: path, Err: fmt.Errorf("file larger than %d bytes", limit)}
	}
	return data, nil
}
