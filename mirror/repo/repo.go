// Package repo is the repository on the inside of the gap: the folder that
// `mirror import` fills and `mirror serve` (or nginx) publishes.
//
// Layout of DIR:
//
//	store/             content-addressed blobs (package store), named by SHA-256
//	generations/N/     a whole publish tree: hard links into store/ (copies
//	                   when a link is impossible), N is the bundle's sequence
//	generations/N.json the generation record: which bundle, signer, times, tree
//	generations/N.manifest  the signed manifest bytes the generation came from
//	current            symlink -> generations/N, switched by one rename(2)
//	tmp/               work in progress; never served, emptied on Open
//	state.json         last sequence, bundle id, times, history of imports
//	receipt.json       what `mirror sync --since` reads (ReceiptFormat)
//	import.log         one JSON line per import attempt, append-only
//	lock               held (package lock, flock) by the one writer
//
// Invariants: a generation becomes visible only through the switch of
// `current`, after every file and directory in it was synced; the record
// generations/N.json is the truth about what is served and state.json is
// repaired from it on Open; nothing under tmp/ is ever referenced.
package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mirror-tool/mirror/mirror/lock"
	"github.com/mirror-tool/mirror/mirror/store"
)

// Names inside the repository folder.
const (
	StoreDir       = "store"
	GenerationsDir = "generations"
	CurrentLink    = "current"
	TmpDir         = "tmp"
	StateFile      = "state.json"
	ReceiptFile    = "receipt.json"
	LogFile        = "import.log"
	LockFile       = "lock"
)

// DefaultKeep is how many generations (the current one included) are kept.
const DefaultKeep = 3

// Errors callers branch on.
var (
	// ErrNotRepository: the folder has no current generation yet.
	ErrNotRepository = errors.New("no generation imported yet")
	// ErrMissingBlob: the tree refers to a blob the store does not hold.
	ErrMissingBlob = errors.New("blob missing from the store")
	// ErrBadPath: a tree path is not a clean relative path.
	ErrBadPath = errors.New("unsafe path in publish tree")
	// ErrCorrupt: a file the repository wrote itself does not parse.
	ErrCorrupt = errors.New("repository file is corrupt")
)

// Repo is an open repository. Only one process opens it for writing at a
// time (Open takes the lock); readers use the package functions Current,
// ReadState, ReadLog and ReadReceipt, which never take the lock.
type Repo struct {
	dir   string
	blobs *store.Store
	lock  *lock.Lock
}

// Open opens (creating it when missing) the repository at dir for writing,
// takes its lock, removes what an interrupted import left behind
// (temporary files, a generation never switched, blobs of an unsynced batch
// that do not match their name) and repairs state.json and receipt.json from the current generation.
func Open(ctx context.Context, dir string) (*Repo, error) {
	for _, d := range []string{dir, filepath.Join(dir, GenerationsDir), filepath.Join(dir, TmpDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create repository %s: %w", dir, err)
		}
	}
	lk, err := lock.Acquire(dir)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", dir, err)
	}
	blobs, err := store.Open(filepath.Join(dir, StoreDir))
	if err != nil {
		lk.Release()
		return nil, err
	}
	r := &Repo{dir: dir, blobs: blobs, lock: lk}
	if err := r.recover(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Dir is the repository folder.
func (r *Repo) Dir() string { return r.dir }

// Store is the repository's content-addressed store.
func (r *Repo) Store() *store.Store { return r.blobs }

// Close releases the lock.
func (r *Repo) Close() error {
	err := r.lock.Release()
	r.lock = nil
	return err
}

// recover brings the repository back to the last switched generation:
// tmp/ emptied, generations newer than current (built, never switched)
// removed, state.json and receipt.json rewritten when they lag behind.
func (r *Repo) recover(ctx context.Context) error {
	tmp := filepath.Join(r.dir, TmpDir)
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("clean %s: %w", tmp, err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("clean %s: %w", tmp, err)
		}
	}
	if err := r.cleanIngestTmp(); err != nil {
		return err
	}
	// An import killed between its ingest and its syncfs (Publish) left
	// the store's batch marker: re-hash that batch and drop torn blobs
	// before anything (Has, a generation) trusts them.
	if _, err := r.blobs.Recover(ctx); err != nil {
		return fmt.Errorf("repository %s: %w", r.dir, err)
	}
	cur, err := Current(r.dir)
	if err != nil && !errors.Is(err, ErrNotRepository) {
		return err
	}
	gens, err := Generations(r.dir)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if g > cur {
			if err := r.removeGeneration(g); err != nil {
				return err
			}
		}
	}
	// Leftover records without a tree (a kill during collection).
	if err := r.removeOrphanRecords(cur); err != nil {
		return err
	}
	if cur == 0 {
		return nil
	}
	rec, err := ReadRecord(r.dir, cur)
	if err != nil {
		return err
	}
	st, err := ReadState(r.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if st == nil || st.Sequence != rec.Sequence || st.BundleID != rec.BundleID {
		if err := r.writeState(st, rec); err != nil {
			return err
		}
		if err := r.AppendLog(LogEntry{Time: rec.Imported, Sequence: rec.Sequence, BundleID: rec.BundleID,
			Signer: rec.Signer, Result: ResultRecovered,
			Message: "state.json repaired from the current generation after an interrupted import"}); err != nil {
			return err
		}
	}
	if rc, err := ReadReceipt(r.dir); err != nil || rc.Sequence != rec.Sequence {
		if err := r.writeReceipt(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (r *Repo) removeOrphanRecords(cur uint64) error {
	gd := filepath.Join(r.dir, GenerationsDir)
	ents, err := os.ReadDir(gd)
	if err != nil {
		return fmt.Errorf("read %s: %w", gd, err)
	}
	for _, e := range ents {
		name := e.Name()
		base, _, ok := strings.Cut(name, ".")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(base, 10, 64)
		if err != nil {
			continue
		}
		if _, err := os.Lstat(filepath.Join(gd, base)); errors.Is(err, fs.ErrNotExist) || n > cur {
			if err := os.Remove(filepath.Join(gd, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("clean %s: %w", gd, err)
			}
		}
	}
	return nil
}

// Current returns the sequence of the generation `current` points to, or
// ErrNotRepository (with 0) when nothing was imported yet.
func Current(dir string) (uint64, error) {
	target, err := os.Readlink(filepath.Join(dir, CurrentLink))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%s: %w", dir, ErrNotRepository)
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", filepath.Join(dir, CurrentLink), err)
	}
	n, ok := parseTarget(target)
	if !ok {
		return 0, fmt.Errorf("%s points to %q, not %s/N: %w", filepath.Join(dir, CurrentLink), target, GenerationsDir, ErrCorrupt)
	}
	return n, nil
}

// GenerationPath is the folder of generation n.
func GenerationPath(dir string, n uint64) string {
	return filepath.Join(dir, GenerationsDir, strconv.FormatUint(n, 10))
}

func linkTarget(n uint64) string {
	return GenerationsDir + "/" + strconv.FormatUint(n, 10)
}

func parseTarget(t string) (uint64, bool) {
	rest, ok := strings.CutPrefix(t, GenerationsDir+"/")
	if !ok {
		return 0, false
	}
	return parseSeq(rest)
}

func parseSeq(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}

// Generations lists the generation folders present, oldest first.
func Generations(dir string) ([]uint64, error) {
	gd := filepath.Join(dir, GenerationsDir)
	ents, err := os.ReadDir(gd)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", gd, err)
	}
	var out []uint64
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if n, ok := parseSeq(e.Name()); ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}
