package minisign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/scrypt"
)

// The secret key file, as the stock minisign tool writes it:
//
//	"untrusted comment: <text>\n" base64(blob) "\n"
//
//	blob = sig_alg[2]  "Ed"
//	       kdf_alg[2]  "Sc" (scrypt) or two zero bytes (unencrypted, minisign -W)
//	       chk_alg[2]  "B2" (BLAKE2b-256)
//	       salt[32] opslimit[8] memlimit[8]   (little-endian; scrypt parameters)
//	       keynum[8] sk[64] chk[32]           (XORed with scrypt(pass, salt) when encrypted)
//
// chk = BLAKE2b-256(sig_alg || keynum || sk) detects a wrong passphrase.
// opslimit and memlimit are libsodium's crypto_pwhash_scryptsalsa208sha256
// limits, turned into scrypt's N, r and p as libsodium does.

// Limits on a secret key file.
const (
	// MaxPrivateKeySize bounds a secret key file.
	MaxPrivateKeySize = 4 << 10
	// MaxKDFOpsLimit bounds the scrypt work a key file may ask for
	// (4 times minisign's default).
	MaxKDFOpsLimit = 4 * DefaultKDFOpsLimit
	// MaxKDFMemLimit bounds the scrypt memory a key file may ask for
	// (minisign's default, 1 GiB).
	MaxKDFMemLimit = DefaultKDFMemLimit
)

// minisign's scrypt limits for new keys (libsodium's "sensitive" limits):
// N = 2^20, r = 8, p = 1, 1 GiB of memory.
const (
	DefaultKDFOpsLimit = 33554432
	DefaultKDFMemLimit = 1073741824
)

// The scrypt limits MarshalPrivate writes: minisign's work with an eighth of
// its memory. libsodium turns them into N = 2^17, r = 8, p = 8: the same
// 2^21 salsa20/8 block mixes as minisign's limits (so about the same time
// for each passphrase guess) in 128 MiB instead of 1 GiB, so that a cron
// run of `mirror sync` that signs a bundle stays within its memory budget.
// What is given up is memory-hardness: a guess costs an attacker 128 MiB
// of memory for the same time instead of 1 GiB. The limits are stored in
// the key file, and the stock minisign reads them from there.
const (
	NewKeyKDFOpsLimit = DefaultKDFOpsLimit
	NewKeyKDFMemLimit = 128 << 20
)

// ErrPassphrase is returned when the passphrase does not decrypt a secret
// key (the key's checksum does not match), or when an encrypted key is given
// no passphrase.
var ErrPassphrase = errors.New("wrong passphrase for the minisign secret key")

var (
	kdfScrypt = [2]byte{'S', 'c'}
	kdfNone   = [2]byte{0, 0}
	chkBlake2 = [2]byte{'B', '2'}
)

const (
	secretBlobSize   = 2 + 2 + 2 + 32 + 8 + 8 + secretKeynumSize
	secretKeynumSize = 8 + 64 + 32
)

type kdfLimits struct{ ops, mem uint64 }

var newKeyKDF atomic.Pointer[kdfLimits]

// SetKDFLimitsForTest makes MarshalPrivate use weaker scrypt limits, so that
// tests that write many keys stay fast. It returns a function restoring the
// defaults. It panics outside a test binary.
func SetKDFLimitsForTest(opslimit, memlimit uint64) (restore func()) {
	if !testing.Testing() {
		panic("minisign: SetKDFLimitsForTest called outside a test")
	}
	old := newKeyKDF.Swap(&kdfLimits{opslimit, memlimit})
	return func() { newKeyKDF.Store(old) }
}

func currentKDF() kdfLimits {
	if l := newKeyKDF.Load(); l != nil {
		return *l
	}
	return kdfLimits{NewKeyKDFOpsLimit, NewKeyKDFMemLimit}
}

// scryptParams turns libsodium's opslimit and memlimit into scrypt's N
// (as log2), r and p, the way crypto_pwhash_scryptsalsa208sha256 does.
func scryptParams(opslimit, memlimit uint64) (logN uint, r, p uint64) {
	if opslimit < 32768 {
		opslimit = 32768
	}
	r = 8
	if opslimit < memlimit/32 {
		p = 1
		maxN := opslimit / (r * 4)
		for logN = 1; logN < 63; logN++ {
			if uint64(1)<<logN > maxN/2 {
				break
			}
		}
		return logN, r, p
	}
	maxN := memlimit / (r * 128)
	for logN = 1; logN < 63; logN++ {
		if uint64(1)<<logN > maxN/2 {
			break
		}
	}
	maxrp := (opslimit / 4) / (uint64(1) << logN)
	if maxrp > 0x3fffffff {
		maxrp = 0x3fffffff
	}
	p = maxrp / r
	return logN, r, p
}

// maxKDFBlockMem bounds scrypt's B buffer (128 r p bytes), which a small
// memlimit with a large opslimit makes grow through p.
const maxKDFBlockMem = 64 << 20

// kdfFits checks the memory scrypt will really take for opslimit and
// memlimit: the file's memlimit alone does not bound it (memlimit 0 with
// the largest opslimit gives p = 2^21, a B buffer of 2 GiB).
func kdfFits(opslimit, memlimit, maxMem uint64) error {
	logN, r, p := scryptParams(opslimit, memlimit)
	if v, b := 128*r*(uint64(1)<<logN), 128*r*p; v > maxMem || b > maxKDFBlockMem {
		return fmt.Errorf("%w: scrypt limits ops=%d mem=%d need %d + %d bytes, more than %d + %d",
			ErrMalformed, opslimit, memlimit, v, b, maxMem, uint64(maxKDFBlockMem))
	}
	return nil
}

func kdfStream(passphrase, salt []byte, opslimit, memlimit uint64) ([]byte, error) {
	logN, r, p := scryptParams(opslimit, memlimit)
	if p == 0 {
		return nil, fmt.Errorf("%w: scrypt limits ops=%d mem=%d give no parallelism", ErrMalformed, opslimit, memlimit)
	}
	return scrypt.Key(passphrase, salt, 1<<logN, int(r), int(p), secretKeynumSize)
}

func secretChecksum(id KeyID, sk []byte) [32]byte {
	h, _ := blake2b.New256(nil)
	h.Write(algEd[:])
	h.Write(id[:])
	h.Write(sk)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// PrivateKeyEncrypted reports whether a secret key file is protected by a
// passphrase, so that a caller knows whether to ask for one.
func PrivateKeyEncrypted(data []byte) (bool, error) {
	blob, err := decodeSecret(data)
	if err != nil {
		return false, err
	}
	return [2]byte(blob[2:4]) == kdfScrypt, nil
}

func decodeSecret(data []byte) ([]byte, error) {
	if len(data) > MaxPrivateKeySize {
		return nil, fmt.Errorf("%w: secret key larger than %d bytes", ErrMalformed, MaxPrivateKeySize)
	}
	lines := splitLines(string(data))
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "untrusted comment: ") {
		return nil, fmt.Errorf("%w: a secret key file is an 'untrusted comment:' line and one base64 line", ErrMalformed)
	}
	blob, err := base64.StdEncoding.Strict().DecodeString(lines[1])
	if err == nil && len(blob) == 42 {
		return nil, fmt.Errorf("%w: this is a minisign public key, not a secret key: give the secret key file", ErrMalformed)
	}
	if err != nil || len(blob) != secretBlobSize {
		return nil, fmt.Errorf("%w: secret key is not %d bytes of base64", ErrMalformed, secretBlobSize)
	}
	if [2]byte(blob[:2]) != algEd {
		return nil, fmt.Errorf("%w: secret key algorithm %q", ErrUnsupported, blob[:2])
	}
	if kdf := [2]byte(blob[2:4]); kdf != kdfScrypt && kdf != kdfNone {
		return nil, fmt.Errorf("%w: secret key kdf %q", ErrUnsupported, blob[2:4])
	}
	if [2]byte(blob[4:6]) != chkBlake2 {
		return nil, fmt.Errorf("%w: secret key checksum algorithm %q", ErrUnsupported, blob[4:6])
	}
	return blob, nil
}

// ParsePrivateKey parses a minisign secret key file, decrypting it with
// passphrase when it is encrypted (the passphrase is ignored otherwise). A
// wrong passphrase gives an error matching ErrPassphrase.
func ParsePrivateKey(data []byte, passphrase []byte) (PrivateKey, error) {
	return parsePrivateKey(data, passphrase, MaxKDFOpsLimit, MaxKDFMemLimit)
}

func parsePrivateKey(data, passphrase []byte, maxOps, maxMem uint64) (PrivateKey, error) {
	blob, err := decodeSecret(data)
	if err != nil {
		return PrivateKey{}, err
	}
	salt := blob[6:38]
	opslimit := binary.LittleEndian.Uint64(blob[38:46])
	memlimit := binary.LittleEndian.Uint64(blob[46:54])
	keynum := bytes.Clone(blob[54:])
	encrypted := [2]byte(blob[2:4]) == kdfScrypt
	if encrypted {
		if passphrase == nil {
			return PrivateKey{}, fmt.Errorf("%w: the key is encrypted and no passphrase was given", ErrPassphrase)
		}
		if opslimit > maxOps || memlimit > maxMem {
			return PrivateKey{}, fmt.Errorf("%w: scrypt limits ops=%d mem=%d exceed ops=%d mem=%d",
				ErrMalformed, opslimit, memlimit, maxOps, maxMem)
		}
		if err := kdfFits(opslimit, memlimit, maxMem); err != nil {
			return PrivateKey{}, err
		}
		stream, err := kdfStream(passphrase, salt, opslimit, memlimit)
		if err != nil {
			return PrivateKey{}, err
		}
		subtle.XORBytes(keynum, keynum, stream)
	}
	var id KeyID
	copy(id[:], keynum[:8])
	sk := keynum[8:72]
	chk := keynum[72:104]
	want := secretChecksum(id, sk)
	switch {
	case subtle.ConstantTimeCompare(chk, want[:]) == 1:
	case !encrypted && allZero(chk):
		// minisign 0.11 -G -W writes no checksum for an unencrypted key.
	case encrypted:
		return PrivateKey{}, ErrPassphrase
	default:
		return PrivateKey{}, fmt.Errorf("%w: secret key checksum does not match", ErrMalformed)
	}
	priv := ed25519.NewKeyFromSeed(sk[:32])
	if !bytes.Equal(priv[32:], sk[32:]) {
		return PrivateKey{}, fmt.Errorf("%w: secret key's public half does not match its seed", ErrMalformed)
	}
	return PrivateKey{ID: id, Key: priv}, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// MarshalPrivate returns the secret key file for k, encrypted with
// passphrase using minisign's scrypt parameters and a salt read from rand.
// A nil passphrase writes an unencrypted key (minisign -W); an empty
// non-nil passphrase is refused.
func (k PrivateKey) MarshalPrivate(passphrase []byte, rand io.Reader) ([]byte, error) {
	if len(k.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("minisign: private key size %d", len(k.Key))
	}
	if passphrase != nil && len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: empty passphrase (use nil for an unencrypted key)", ErrPassphrase)
	}
	blob := make([]byte, 0, secretBlobSize)
	blob = append(blob, algEd[:]...)
	if passphrase == nil {
		blob = append(blob, kdfNone[:]...)
	} else {
		blob = append(blob, kdfScrypt[:]...)
	}
	blob = append(blob, chkBlake2[:]...)
	keynum := make([]byte, 0, secretKeynumSize)
	keynum = append(keynum, k.ID[:]...)
	keynum = append(keynum, k.Key...)
	chk := secretChecksum(k.ID, k.Key)
	keynum = append(keynum, chk[:]...)
	if passphrase == nil {
		blob = append(blob, make([]byte, 32+8+8)...)
		blob = append(blob, keynum...)
	} else {
		var salt [32]byte
		if _, err := io.ReadFull(rand, salt[:]); err != nil {
			return nil, fmt.Errorf("minisign: read salt: %w", err)
		}
		l := currentKDF()
		stream, err := kdfStream(passphrase, salt[:], l.ops, l.mem)
		if err != nil {
			return nil, err
		}
		subtle.XORBytes(keynum, keynum, stream)
		blob = append(blob, salt[:]...)
		blob = binary.LittleEndian.AppendUint64(blob, l.ops)
		blob = binary.LittleEndian.AppendUint64(blob, l.mem)
		blob = append(blob, keynum...)
	}
	comment := "minisign encrypted secret key"
	if passphrase == nil {
		comment = "minisign secret key (unencrypted)"
	}
	return []byte("untrusted comment: " + comment + "\n" + base64.StdEncoding.EncodeToString(blob) + "\n"), nil
}
