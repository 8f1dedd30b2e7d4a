package mirror

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Partial downloads live in the state folder's PartialDir, spread over 256
// subfolders by the first byte of a hash of their URL (partial/ab/cdef...):
// creating 20,000 files in one folder costs ext4 several times what it
// costs over 256 (the folder's lock and index), and a cold sync of many
// small files creates one partial per file.

// partialFor is where the download of URL u goes (and is resumed from).
func (r *run) partialFor(u string) string {
	h := sha256Hex([]byte(u))
	return r.partial + "/" + h[:2] + "/" + h[2:40]
}

// makePartialDirs creates the 256 subfolders of the partial folder, and
// removes what a run of an earlier layout left at its top (partials named
// by the whole hash, and their side files: they could no longer be
// resumed).
func makePartialDirs(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("partial folder: %w", err)
	}
	have := make(map[string]bool, 256)
	for _, e := range ents {
		if e.IsDir() && len(e.Name()) == 2 && isLowerHex(e.Name()) {
			have[e.Name()] = true
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("partial folder: %w", err)
		}
	}
	for i := range 256 {
		name := hex.EncodeToString([]byte{byte(i)})
		if have[name] {
			continue
		}
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("partial folder: %w", err)
		}
	}
	return nil
}

func isLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
