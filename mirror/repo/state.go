package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/mirror-tool/mirror/internal/atomicfile"
)

// Format strings of the repository's own files. Readers refuse others.
const (
	RecordFormat  = "mirror-generation/v1"
	StateFormat   = "mirror-state/v1"
	ReceiptFormat = "mirror-receipt/v1"
)

// Limits on the repository's own files when read back (they are local, but
// a read is never unbounded).
const (
	MaxRecordSize  = 512 << 20 // generations/N.json
	MaxStateSize   = 64 << 20  // state.json
	MaxReceiptSize = 512 << 20 // receipt.json
	MaxLogTail     = 4 << 20   // how much of import.log ReadLog reads
	MaxLogLine     = 64 << 10  // one import.log line
)

// Entry is one file of a publish tree.
type Entry struct {
	Path   string `json:"path"`   // slash-separated, relative
	SHA256 string `json:"sha256"` // lowercase hex
	Size   int64  `json:"size"`
}

// Record describes one generation; it is written to generations/N.json
// before the generation can become current.
type Record struct {
	Format       string    `json:"format"`
	Sequence     uint64    `json:"sequence"`
	BaseSequence uint64    `json:"base_sequence"`
	BundleID     string    `json:"bundle_id"`
	Signer       string    `json:"signer"` // operator key id, hex
	Created      time.Time `json:"created"`
	Expires      time.Time `json:"expires"`
	Imported     time.Time `json:"imported"`
	ToolVersion  string    `json:"tool_version,omitempty"`
	Packages     int       `json:"packages"`
	Bytes        int64     `json:"bytes"` // sum of the tree's sizes
	Tree         []Entry   `json:"tree"`
}

// Imported names one bundle in the import history.
type Imported struct {
	Sequence uint64 `json:"sequence"`
	BundleID string `json:"bundle_id"`
}

// State is state.json: the newest imported bundle and the history of every
// bundle imported, which is how a replay is told from a rollback.
type State struct {
	Format   string     `json:"format"`
	Sequence uint64     `json:"sequence"`
	BundleID string     `json:"bundle_id"`
	Signer   string     `json:"signer"`
	Created  time.Time  `json:"created"`
	Expires  time.Time  `json:"expires"`
	Imported time.Time  `json:"imported"`
	History  []Imported `json:"history"`
}

// Receipt is receipt.json, read by `mirror sync --since`: the last sequence
// imported and every blob the store holds after collection, sorted.
type Receipt struct {
	Format   string   `json:"format"`
	Sequence uint64   `json:"sequence"`
	BundleID string   `json:"bundle_id"`
	Blobs    []string `json:"blobs"`
}

// readBounded reads at most limit bytes of path and fails beyond.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", path, limit, ErrCorrupt)
	}
	return data, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// ParseRecord parses a generation record and checks it is well formed.
func ParseRecord(data []byte) (*Record, error) {
	if len(data) > MaxRecordSize {
		return nil, fmt.Errorf("generation record larger than %d bytes: %w", MaxRecordSize, ErrCorrupt)
	}
	var rec Record
	if err := decodeStrict(data, &rec); err != nil {
		return nil, fmt.Errorf("generation record: %v: %w", err, ErrCorrupt)
	}
	if rec.Format != RecordFormat {
		return nil, fmt.Errorf("generation record format %q, want %q: %w", rec.Format, RecordFormat, ErrCorrupt)
	}
	if rec.Sequence == 0 {
		return nil, fmt.Errorf("generation record without sequence: %w", ErrCorrupt)
	}
	if err := CheckTree(rec.Tree); err != nil {
		return nil, fmt.Errorf("generation record: %w", err)
	}
	return &rec, nil
}

// ReadRecord reads generations/N.json.
func ReadRecord(dir string, n uint64) (*Record, error) {
	path := filepath.Join(dir, GenerationsDir, strconv.FormatUint(n, 10)+".json")
	data, err := readBounded(path, MaxRecordSize)
	if err != nil {
		return nil, fmt.Errorf("generation %d: %w", n, err)
	}
	rec, err := ParseRecord(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if rec.Sequence != n {
		return nil, fmt.Errorf("%s holds sequence %d: %w", path, rec.Sequence, ErrCorrupt)
	}
	return rec, nil
}

// ParseState parses state.json.
func ParseState(data []byte) (*State, error) {
	if len(data) > MaxStateSize {
		return nil, fmt.Errorf("state larger than %d bytes: %w", MaxStateSize, ErrCorrupt)
	}
	var st State
	if err := decodeStrict(data, &st); err != nil {
		return nil, fmt.Errorf("state: %v: %w", err, ErrCorrupt)
	}
	if st.Format != StateFormat {
		return nil, fmt.Errorf("state format %q, want %q: %w", st.Format, StateFormat, ErrCorrupt)
	}
	return &st, nil
}

// ReadState reads state.json; fs.ErrNotExist when nothing was imported.
func ReadState(dir string) (*State, error) {
	path := filepath.Join(dir, StateFile)
	data, err := readBounded(path, MaxStateSize)
	if err != nil {
		return nil, err
	}
	st, err := ParseState(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// Has reports whether the bundle (sequence, id) was imported before.
func (s *State) Has(seq uint64, id string) bool {
	if s == nil {
		return false
	}
	return slices.Contains(s.History, Imported{Sequence: seq, BundleID: id})
}

// ParseReceipt parses receipt.json.
func ParseReceipt(data []byte) (*Receipt, error) {
	if len(data) > MaxReceiptSize {
		return nil, fmt.Errorf("receipt larger than %d bytes: %w", MaxReceiptSize, ErrCorrupt)
	}
	var rc Receipt
	if err := decodeStrict(data, &rc); err != nil {
		return nil, fmt.Errorf("receipt: %v: %w", err, ErrCorrupt)
	}
	if rc.Format != ReceiptFormat {
		return nil, fmt.Errorf("receipt format %q, want %q: %w", rc.Format, ReceiptFormat, ErrCorrupt)
	}
	for _, b := range rc.Blobs {
		if !ValidSum(b) {
			return nil, fmt.Errorf("receipt blob %q is not a SHA-256: %w", b, ErrCorrupt)
		}
	}
	return &rc, nil
}

// ReadReceipt reads DIR/receipt.json. The sync side may read a copy of it
// carried out of the gap: use ParseReceipt then.
func ReadReceipt(dir string) (*Receipt, error) {
	path := filepath.Join(dir, ReceiptFile)
	data, err := readBounded(path, MaxReceiptSize)
	if err != nil {
		return nil, err
	}
	rc, err := ParseReceipt(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rc, nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeState records rec as the newest import, keeping the history of old.
func (r *Repo) writeState(old *State, rec *Record) error {
	st := State{Format: StateFormat, Sequence: rec.Sequence, BundleID: rec.BundleID, Signer: rec.Signer,
		Created: rec.Created, Expires: rec.Expires, Imported: rec.Imported}
	if old != nil {
		st.History = append(st.History, old.History...)
	}
	if !st.Has(rec.Sequence, rec.BundleID) {
		st.History = append(st.History, Imported{Sequence: rec.Sequence, BundleID: rec.BundleID})
	}
	return writeJSON(filepath.Join(r.dir, StateFile), st)
}

// writeReceipt lists the store after collection.
func (r *Repo) writeReceipt(ctx context.Context) error {
	cur, err := Current(r.dir)
	if err != nil {
		return err
	}
	rec, err := ReadRecord(r.dir, cur)
	if err != nil {
		return err
	}
	rc := Receipt{Format: ReceiptFormat, Sequence: rec.Sequence, BundleID: rec.BundleID, Blobs: []string{}}
	err = r.blobs.Walk(func(sum string, _ int64) error {
		rc.Blobs = append(rc.Blobs, sum)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list store: %w", err)
	}
	slices.Sort(rc.Blobs)
	return writeJSON(filepath.Join(r.dir, ReceiptFile), rc)
}

// ValidSum reports whether s is a lowercase hex SHA-256.
func ValidSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
