package repo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Results recorded in the import log.
const (
	ResultImported  = "imported"
	ResultAlready   = "already-imported" // the same bundle again: nothing done
	ResultRefused   = "refused"          // the bundle was refused (signature, rollback, expiry, ...)
	ResultFailed    = "failed"           // the import failed (I/O, full disk, ...)
	ResultRecovered = "recovered"        // Open repaired state after a crash
)

// LogEntry is one line of import.log.
type LogEntry struct {
	Time     time.Time `json:"time"`
	Bundle   string    `json:"bundle,omitempty"` // file name as given
	Sequence uint64    `json:"sequence,omitempty"`
	Base     uint64    `json:"base_sequence,omitempty"`
	BundleID string    `json:"bundle_id,omitempty"`
	Signer   string    `json:"signer,omitempty"`
	Packages int       `json:"packages,omitempty"`
	Files    int       `json:"files,omitempty"`
	NewBlobs int       `json:"new_blobs,omitempty"`
	Bytes    int64     `json:"bytes,omitempty"` // bytes of new blobs stored
	Result   string    `json:"result"`
	Message  string    `json:"message,omitempty"`
}

// AppendLog appends one line to import.log and syncs it.
func (r *Repo) AppendLog(e LogEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if len(line) >= MaxLogLine {
		e.Message = e.Message[:min(len(e.Message), 1024)]
		if line, err = json.Marshal(e); err != nil {
			return err
		}
	}
	line = append(line, '\n')
	path := filepath.Join(r.dir, LogFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	// A line cut short (a full disk, a crash) must not swallow this one:
	// it starts on a line of its own, and if it does not fit whole it is
	// taken back.
	size, serr := f.Seek(0, io.SeekEnd)
	err = serr
	if err == nil && size > 0 {
		var last [1]byte
		if _, rerr := f.ReadAt(last[:], size-1); rerr == nil && last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	if err == nil {
		_, err = f.Write(line)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil && serr == nil {
		f.Truncate(size) // where this line began
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}

// ReadLog returns the last n entries of DIR/import.log, oldest first (none
// when there is no log). It reads at most MaxLogTail bytes from the end.
func ReadLog(dir string, n int) ([]LogEntry, error) {
	path := filepath.Join(dir, LogFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-MaxLogTail, 0)
	data, err := io.ReadAll(io.NewSectionReader(f, off, MaxLogTail))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if off > 0 {
		// The first line is cut: drop it.
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		} else {
			data = nil
		}
	}
	return ParseLog(data, n), nil
}

// ParseLog parses import.log lines and returns the last n entries. A line
// that does not parse (a torn write) comes back as an entry with Result
// "unreadable" so that it is seen, not hidden.
func ParseLog(data []byte, n int) []LogEntry {
	var out []LogEntry
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e LogEntry
		if len(line) > MaxLogLine || json.Unmarshal(line, &e) != nil || e.Result == "" {
			e = LogEntry{Result: "unreadable", Message: fmt.Sprintf("%q", line[:min(len(line), 120)])}
		}
		out = append(out, e)
		if n > 0 && len(out) > n {
			out = out[1:]
		}
	}
	return out
}
