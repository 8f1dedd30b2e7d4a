// Package state owns what `mirror sync` remembers between runs: the last
// bundle sequence, which blobs were shipped in which sequence, and the
// validators and hashes of upstream files (for conditional requests and cache
// hits). (The receipt that `mirror import` writes inside the gap is
// mirror/repo's Receipt.)
//
// The state file is rewritten atomically, and only after a bundle and its
// signature are complete on disk: a killed run leaves the previous state, so
// the sequence stays gap-free and nothing is claimed as shipped that was not.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/mirror-tool/mirror/internal/atomicfile"
)

// File names inside the state folder.
const (
	// FileName is the state file inside the state folder (binary: see
	// codec.go).
	FileName = "sync.state"
	// V1FileName is where FormatV1 (JSON) kept the state: Load reads it
	// when FileName does not exist, and Save removes it once FileName is
	// written.
	V1FileName = "state.json"
	// Format is the version line of the state file that Save writes.
	Format = "mirror-sync-state/v2"
	// FormatV1 is the JSON state of earlier versions: Load reads it, the
	// next Save writes it as Format.
	FormatV1 = "mirror-sync-state/v1"
)

// MaxStateSize bounds the state file read back.
const MaxStateSize = 256 << 20

var (
	// ErrCorrupt is returned for a state file that cannot be read back.
	ErrCorrupt = errors.New("state file is corrupt")
	// ErrFormat is returned for a state file of a format this version does
	// not know (written by a newer mirror).
	ErrFormat = errors.New("unknown state file format")
)

// Upstream is what is remembered of one upstream URL.
type Upstream struct {
	SHA256       string `json:"sha256"`
	Size         int64  `json:"size"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// Verified is an accepted verdict: the file, its signatures and the trust
// table it was decided under, the keys that passed, the scheme of each
// signature, and when. Sync reuses it only while all of these are the same,
// every scheme is one whose checks do not depend on time (minisign, SSH),
// and no validity window of the trust table opened or closed since At.
type Verified struct {
	File    string            `json:"file"`
	Sigs    string            `json:"sigs"`
	Trust   string            `json:"trust"`
	Keys    []string          `json:"keys"`
	Schemes map[string]string `json:"schemes"`
	At      time.Time         `json:"at"`
	// Signed is the newest signing time the accepted signatures stated
	// for this package, or for an earlier version of it (zero when none
	// stated one): sync refuses a changed file whose signatures are older,
	// an upstream rollback.
	Signed time.Time `json:"signed,omitzero"`
}

// State is the sync state. The zero value (after New) is a fresh state with
// sequence 0: the first bundle is sequence 1.
type State struct {
	// Format is the format of the file the state was read from (Format
	// for a new state); Save writes Format.
	Format string `json:"format"`
	// Sequence is the sequence number of the last bundle written and
	// recorded; 0 when none.
	Sequence uint64 `json:"sequence"`
	// Shipped maps a blob's SHA-256 (hex) to the sequence of the first
	// bundle that carried it.
	Shipped map[string]uint64 `json:"shipped"`
	// Upstreams maps an upstream URL to what was last seen there (only
	// content that passed its check is recorded).
	Upstreams map[string]Upstream `json:"upstreams"`
	// Verified remembers accepted decisions that do not depend on the
	// clock, keyed by package ("source:name"), so that an unchanged file
	// is not hashed again on every run, and the rollback marks (Signed):
	// of each package, of a checksum list and, under "source:dists/SUITE",
	// the Date of an apt suite's last accepted release.
	Verified map[string]Verified `json:"verified,omitempty"`
	// Bundle is the file name of the last bundle recorded.
	Bundle string `json:"bundle,omitempty"`
	// Digest is the SHA-256 of the last bundle's package set, publish tree
	// and trust file, to tell "nothing new" from a changed set that needs
	// no new blobs (a package removed, a file renamed).
	Digest string `json:"digest,omitempty"`
}

// New returns an empty state.
func New() *State {
	return &State{Format: Format, Shipped: map[string]uint64{}, Upstreams: map[string]Upstream{}, Verified: map[string]Verified{}}
}

// Load reads the state in dir. A missing state file is a fresh state. Both
// Format and FormatV1 files are read; any other is refused (ErrFormat).
func Load(dir string) (*State, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		path = filepath.Join(dir, V1FileName)
		f, err = os.Open(path)
	}
	if errors.Is(err, os.ErrNotExist) {
		return New(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	defer f.Close()
	data, err := readLimited(f, MaxStateSize)
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse parses the bytes of a state file of either format (Load without
// the file).
func Parse(data []byte) (*State, error) {
	var s *State
	switch {
	case bytes.HasPrefix(data, magicV2):
		var err error
		if s, err = decode(data); err != nil {
			return nil, fmt.Errorf("%w: %v (move it away to start over with a full bundle)", ErrCorrupt, err)
		}
	case bytes.HasPrefix(data, []byte("mirror-sync-state/")):
		line, _, _ := bytes.Cut(data, []byte("\n"))
		return nil, fmt.Errorf("%w %.64q: this version reads %s and %s (is the state from a newer mirror?)", ErrFormat, line, Format, FormatV1)
	default:
		s = New()
		if err := json.Unmarshal(data, s); err != nil {
			return nil, fmt.Errorf("%w: %v (move it away to start over with a full bundle)", ErrCorrupt, err)
		}
		if s.Format != FormatV1 {
			return nil, fmt.Errorf("%w %.64q: this version reads %s and %s (is the state from a newer mirror?)", ErrFormat, s.Format, Format, FormatV1)
		}
		if s.Shipped == nil {
			s.Shipped = map[string]uint64{}
		}
		if s.Upstreams == nil {
			s.Upstreams = map[string]Upstream{}
		}
		if s.Verified == nil {
			s.Verified = map[string]Verified{}
		}
		// The v2 decoder makes these checks as it reads each entry
		// (and a v2 size cannot be negative).
		for sum, seq := range s.Shipped {
			if !validSHA256(sum) || seq == 0 || seq > s.Sequence {
				return nil, fmt.Errorf("%w: shipped blob %q in sequence %d (last is %d)", ErrCorrupt, sum, seq, s.Sequence)
			}
		}
		for u, rec := range s.Upstreams {
			if rec.Size < 0 {
				return nil, fmt.Errorf("%w: upstream %q has size %d", ErrCorrupt, u, rec.Size)
			}
		}
	}
	return s, nil
}

// Marshal returns the bytes Save writes.
func (s *State) Marshal() ([]byte, error) {
	s.Format = Format
	return encode(s)
}

// Save writes the state to dir atomically (temp, fsync, rename, fsync dir),
// always in Format.
func (s *State) Save(dir string) error {
	data, err := s.Marshal()
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, FileName), data, 0o644); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	// The state of an earlier version goes once the new file is durable
	// (a crash in between leaves both, and Load prefers FileName).
	if err := os.Remove(filepath.Join(dir, V1FileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("save state: remove the earlier %s: %w", V1FileName, err)
	}
	return nil
}

// Clone returns a deep copy, so that a run can prepare the next state and
// commit it only when the bundle is safely written.
func (s *State) Clone() *State {
	c := &State{Format: s.Format, Sequence: s.Sequence, Bundle: s.Bundle, Digest: s.Digest,
		Shipped: make(map[string]uint64, len(s.Shipped)), Upstreams: make(map[string]Upstream, len(s.Upstreams)),
		Verified: make(map[string]Verified, len(s.Verified))}
	for k, v := range s.Shipped {
		c.Shipped[k] = v
	}
	for k, v := range s.Upstreams {
		c.Upstreams[k] = v
	}
	for k, v := range s.Verified {
		c.Verified[k] = v
	}
	return c
}

// CloneShipped is Clone without Upstreams and Verified (left empty): what a
// run starts its next state from, since it replaces both with what it
// verified itself (copying 60,000 entries only to drop them cost a no-op
// run of 20,000 packages 10 ms).
func (s *State) CloneShipped() *State {
	return &State{Format: s.Format, Sequence: s.Sequence, Bundle: s.Bundle, Digest: s.Digest,
		Shipped: maps.Clone(s.Shipped), Upstreams: map[string]Upstream{}, Verified: map[string]Verified{}}
}

// Record marks blobs as shipped in bundle seq and makes seq the last
// sequence. Blobs already shipped keep their first sequence.
func (s *State) Record(seq uint64, blobs []string) {
	for _, b := range blobs {
		if _, ok := s.Shipped[b]; !ok {
			s.Shipped[b] = seq
		}
	}
	if seq > s.Sequence {
		s.Sequence = seq
	}
}

// Missing returns the blobs of want that have not been shipped, sorted and
// without duplicates.
func (s *State) Missing(want []string) []string {
	return Missing(want, func(b string) bool { _, ok := s.Shipped[b]; return ok })
}

// readLimited reads at most limit bytes of f (an error beyond), in one
// allocation when f says its size.
func readLimited(f *os.File, limit int64) ([]byte, error) {
	size := int64(512)
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		size = min(fi.Size(), limit) + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return buf.Bytes(), nil
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Missing returns the blobs of want for which have is false, sorted and
// without duplicates.
func Missing(want []string, have func(string) bool) []string {
	// The set of sums seen is made at the first missing one: on a run
	// with nothing new, none is (and want holds 40,000 sums).
	var seen map[string]bool
	var out []string
	for _, b := range want {
		if have(b) || seen[b] {
			continue
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[b] = true
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}
