package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/mirror-tool/mirror/internal/atomicfile"
	"github.com/mirror-tool/mirror/internal/treepath"
)

// Limits on a publish tree.
const (
	MaxTreeEntries = 1 << 20
	MaxPathLen     = 1024
	MaxPathDepth   = 32
)

// PathError names the tree path that is unsafe and why.
type PathError struct {
	Path   string
	Reason string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("%q: %s: %v", e.Path, e.Reason, ErrBadPath)
}
func (e *PathError) Unwrap() error { return ErrBadPath }

// MissingBlobError lists blobs a tree needs that the store does not hold.
type MissingBlobError struct {
	Missing []Entry // the first few
	Count   int
}

func (e *MissingBlobError) Error() string {
	return fmt.Sprintf("%d file(s) of the publish tree have no blob in the store (first: %s, sha256 %s): %v",
		e.Count, e.Missing[0].Path, e.Missing[0].SHA256, ErrMissingBlob)
}
func (e *MissingBlobError) Unwrap() error { return ErrMissingBlob }

// CheckPath checks that p is a clean, relative, slash-separated path that
// stays inside the tree on every platform the mirror serves.
func CheckPath(p string) error {
	bad := func(reason string) error { return &PathError{Path: p, Reason: reason} }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxPathLen:
		return bad("too long")
	case strings.ContainsAny(p, "\\\x00:"):
		return bad("backslash, colon or NUL")
	case strings.HasPrefix(p, "/"):
		return bad("absolute")
	case path.Clean(p) != p:
		return bad("not clean")
	case strings.Count(p, "/") >= MaxPathDepth:
		return bad("too deep")
	}
	if !utf8.ValidString(p) {
		// The manifest is JSON, which would carry such a path as U+FFFD:
		// the bundle would publish a name other than the one checked.
		return bad("not UTF-8")
	}
	for el := range strings.SplitSeq(p, "/") {
		if el == ".." || el == "." {
			return bad("dot element")
		}
		for _, c := range el {
			if c < 0x20 || c == 0x7f {
				return bad("control character")
			}
		}
	}
	return nil
}

// CheckTree checks every path and sum of a tree, and that no two entries
// collide: no duplicates, none equal ignoring case, no file that is also a
// folder of another.
func CheckTree(tree []Entry) error {
	if len(tree) > MaxTreeEntries {
		return fmt.Errorf("publish tree has %d files, limit %d: %w", len(tree), MaxTreeEntries, ErrBadPath)
	}
	g := NewTreeGuard(len(tree), false)
	for _, e := range tree {
		if err := CheckPath(e.Path); err != nil {
			return err
		}
		if !ValidSum(e.SHA256) {
			return fmt.Errorf("%s: sha256 %q is not lowercase hex: %w", e.Path, e.SHA256, ErrCorrupt)
		}
		if e.Size < 0 {
			return fmt.Errorf("%s: negative size: %w", e.Path, ErrCorrupt)
		}
		if err := g.Add(e.Path); err != nil {
			return err
		}
	}
	return nil
}

// TreeGuard finds, as paths are added, those that would collide in a tree
// (treepath.Set: equal to another when case is ignored, a file that is also
// a folder of another, a file inside another file). CheckTree uses it on a
// whole tree; sync on one package's paths at a time, to refuse a package
// rather than fail the run. Paths are clean (CheckPath).
type TreeGuard struct {
	set *treepath.Set
}

// NewTreeGuard makes a TreeGuard with room for about n paths. With repeats,
// a path may be added again (sync: a signature that several packages
// share); CheckTree refuses a repeated path.
func NewTreeGuard(n int, repeats bool) *TreeGuard {
	s := treepath.NewSet(n)
	s.Repeats = repeats
	return &TreeGuard{set: s}
}

// Add adds paths, all or none. The error is a *PathError (ErrBadPath)
// naming the first path that collides.
func (g *TreeGuard) Add(paths ...string) error {
	var c *treepath.Clash
	if err := g.set.Add(paths...); errors.As(err, &c) {
		return &PathError{Path: c.Path, Reason: c.Reason()}
	}
	return nil
}

// Missing returns the entries of tree whose blob the store lacks.
func (r *Repo) Missing(tree []Entry) error {
	var e MissingBlobError
	for _, ent := range tree {
		ok, err := r.blobs.Has(ent.SHA256)
		if err != nil {
			return err
		}
		if !ok {
			if len(e.Missing) < 5 {
				e.Missing = append(e.Missing, ent)
			}
			e.Count++
		}
	}
	if e.Count > 0 {
		return &e
	}
	return nil
}

// Publish builds generation rec.Sequence from rec.Tree (every blob must
// already be in the store), syncs it, and switches `current` to it with
// one rename. manifest (the signed manifest bytes) is kept beside it for
// audit. On error nothing served has changed, except for a *SwitchedError:
// the new generation is served, and a step after the switch failed. The caller then records the
// import (state.json is written here, after the switch) and collects.
func (r *Repo) Publish(ctx context.Context, rec *Record, manifest []byte) error {
	if rec.Format == "" {
		rec.Format = RecordFormat
	}
	if err := CheckTree(rec.Tree); err != nil {
		return err
	}
	cur, err := Current(r.dir)
	if err != nil && !errors.Is(err, ErrNotRepository) {
		return err
	}
	if rec.Sequence <= cur {
		return fmt.Errorf("generation %d is not newer than the current %d", rec.Sequence, cur)
	}
	if err := r.Missing(rec.Tree); err != nil {
		return err
	}
	rec.Bytes = 0
	for _, e := range rec.Tree {
		rec.Bytes += e.Size
	}
	seq := strconv.FormatUint(rec.Sequence, 10)
	work := filepath.Join(r.dir, TmpDir, "gen-"+seq)
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	if err := os.Mkdir(work, 0o755); err != nil {
		return fmt.Errorf("build generation %d: %w", rec.Sequence, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(work)
		}
	}()
	// The blobs this import adopted (Ingest: store.AdoptBatched) become
	// durable first, and the store's batch marker goes, before the tree
	// links them: a link changes a blob's inode change time, so a batch
	// window that covered the build would make store.Recover, after a
	// crash, re-hash every blob of the tree instead of only the new ones.
	if err := r.blobs.Sync(); err != nil {
		return fmt.Errorf("build generation %d: %w", rec.Sequence, err)
	}
	dirs, err := r.build(ctx, work, rec.Tree)
	if err != nil {
		return fmt.Errorf("build generation %d: %w", rec.Sequence, err)
	}
	Checkpoint("built")
	if err := syncTree(work, dirs); err != nil {
		return fmt.Errorf("build generation %d: %w", rec.Sequence, err)
	}
	Checkpoint("synced")

	gd := filepath.Join(r.dir, GenerationsDir)
	if err := writeJSON(filepath.Join(gd, seq+".json"), rec); err != nil {
		return err
	}
	if manifest != nil {
		if err := atomicfile.WriteFile(filepath.Join(gd, seq+".manifest"), manifest, 0o644); err != nil {
			return fmt.Errorf("keep manifest of generation %d: %w", rec.Sequence, err)
		}
	}
	Checkpoint("recorded")
	final := GenerationPath(r.dir, rec.Sequence)
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	if err := os.Rename(work, final); err != nil {
		return fmt.Errorf("place generation %d: %w", rec.Sequence, err)
	}
	ok = true
	if err := atomicfile.SyncDir(gd); err != nil {
		return err
	}
	Checkpoint("placed")
	switched, err := r.switchTo(rec.Sequence)
	if err != nil {
		if switched {
			return &SwitchedError{Sequence: rec.Sequence, Err: err}
		}
		return err
	}
	Checkpoint("switched")
	old, err := ReadState(r.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		old = nil // corrupt state is rewritten from the record; history restarts
	}
	if err := r.writeState(old, rec); err != nil {
		return &SwitchedError{Sequence: rec.Sequence, Err: err}
	}
	return nil
}

// SwitchedError is an error of Publish after `current` was switched: the new
// generation is served, but syncing the folder or writing state.json
// failed. The import took effect; the next Open repairs state.json from the
// generation's record.
type SwitchedError struct {
	Sequence uint64
	Err      error
}

func (e *SwitchedError) Error() string {
	return fmt.Sprintf("generation %d is served, but: %v (the next import repairs state.json)", e.Sequence, e.Err)
}
func (e *SwitchedError) Unwrap() error { return e.Err }

// build lays the tree out under work: folders, then one hard link (or
// copy) per file. It returns the folders made, parents before children;
// nothing is synced yet (syncTree).
func (r *Repo) build(ctx context.Context, work string, tree []Entry) ([]string, error) {
	root, err := os.OpenRoot(work)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	dirs := map[string]bool{}
	var order []string
	for i, e := range tree {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if d := path.Dir(e.Path); d != "." && !dirs[d] {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
			var made []string
			for x := d; x != "." && !dirs[x]; x = path.Dir(x) {
				dirs[x] = true
				made = append(made, x)
			}
			slices.Reverse(made)
			order = append(order, made...)
		}
		dst := filepath.Join(work, filepath.FromSlash(e.Path))
		if err := r.place(root, r.blobs.Path(e.SHA256), e, dst); err != nil {
			return nil, err
		}
		Checkpoint("link")
	}
	return order, nil
}

// syncTree makes the tree built under work durable (its folders and links;
// copies were fsynced by place) with one syncfs(2) of its file system;
// without syncfs, folder by folder, deepest first.
func syncTree(work string, dirs []string) error {
	if err := syncFS(work); err == nil {
		return nil
	} else if !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := atomicfile.SyncDir(filepath.Join(work, filepath.FromSlash(dirs[i]))); err != nil {
			return err
		}
	}
	return atomicfile.SyncDir(work)
}

// place links the blob at dst, or copies it when the file system refuses a
// link (another device, too many links).
func (r *Repo) place(root *os.Root, blob string, e Entry, dst string) error {
	err := os.Link(blob, dst)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EMLINK) && !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("link %s: %w", e.Path, err)
	}
	src, err := os.Open(blob)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := root.OpenFile(filepath.FromSlash(e.Path), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("copy %s: %w", e.Path, err)
	}
	n, err := io.Copy(WrapWriter(out), src)
	if err == nil && n != e.Size {
		err = fmt.Errorf("blob %s has %d bytes, tree says %d: %w", e.SHA256, n, e.Size, ErrCorrupt)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", e.Path, err)
	}
	return nil
}

// switchTo points `current` at generation n: a new symlink made in tmp/
// replaces `current` with one rename(2), then the folder is synced.
// switchTo points `current` at generation n with one rename. switched
// reports whether the rename happened (an error after it does not undo it).
func (r *Repo) switchTo(n uint64) (switched bool, err error) {
	tmp := filepath.Join(r.dir, TmpDir, "current-"+strconv.FormatUint(n, 10))
	os.Remove(tmp)
	if err := os.Symlink(linkTarget(n), tmp); err != nil {
		return false, fmt.Errorf("switch to generation %d: %w", n, err)
	}
	if err := os.Rename(tmp, filepath.Join(r.dir, CurrentLink)); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("switch to generation %d: %w", n, err)
	}
	return true, atomicfile.SyncDir(r.dir)
}

func (r *Repo) removeGeneration(n uint64) error {
	p := GenerationPath(r.dir, n)
	// The record goes last: a kill in between leaves a record without a
	// tree, which recover removes.
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("remove generation %d: %w", n, err)
	}
	for _, ext := range []string{".manifest", ".json"} {
		if err := os.Remove(p + ext); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove generation %d: %w", n, err)
		}
	}
	return nil
}

// Collect keeps the newest keep generations (the current one always) and
// removes the others, then every blob no kept generation refers to, then
// rewrites the receipt. It returns how many generations and blobs went.
func (r *Repo) Collect(ctx context.Context, keep int) (gens, blobs int, err error) {
	if keep < 1 {
		keep = 1
	}
	cur, err := Current(r.dir)
	if err != nil {
		return 0, 0, err
	}
	all, err := Generations(r.dir)
	if err != nil {
		return 0, 0, err
	}
	var kept []uint64
	for i := len(all) - 1; i >= 0; i-- {
		g := all[i]
		if g > cur {
			continue // never switched: recover removes it
		}
		if len(kept) < keep || g == cur {
			kept = append(kept, g)
			continue
		}
		if err := r.removeGeneration(g); err != nil {
			return gens, 0, err
		}
		gens++
	}
	Checkpoint("collected-generations")
	used := map[string]bool{}
	for _, g := range kept {
		rec, err := ReadRecord(r.dir, g)
		if err != nil {
			return gens, 0, err
		}
		for _, e := range rec.Tree {
			used[e.SHA256] = true
		}
	}
	var unused []string
	err = r.blobs.Walk(func(sum string, _ int64) error {
		if !used[sum] {
			unused = append(unused, sum)
		}
		return nil
	})
	if err != nil {
		return gens, 0, fmt.Errorf("list store: %w", err)
	}
	for _, sum := range unused {
		if err := ctx.Err(); err != nil {
			return gens, blobs, err
		}
		if err := r.blobs.Remove(sum); err != nil {
			return gens, blobs, fmt.Errorf("remove blob %s: %w", sum, err)
		}
		blobs++
		Checkpoint("collect-blob")
	}
	return gens, blobs, r.writeReceipt(ctx)
}
