package mirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mirror-tool/mirror/mirror/repo"
)

// StatusReport is what `mirror status` shows of a repository.
type StatusReport struct {
	Repo        string          `json:"repo"`
	Sequence    uint64          `json:"sequence"` // of the current generation (its bundle)
	BundleID    string          `json:"bundle_id"`
	BaseSeq     uint64          `json:"base_sequence"`
	Signer      string          `json:"signer"` // operator key id that signed it
	Created     time.Time       `json:"created"`
	Expires     time.Time       `json:"expires"`
	Imported    time.Time       `json:"imported"`
	Expired     bool            `json:"expired"` // the newest bundle is past its expiry
	Packages    int             `json:"packages"`
	Files       int             `json:"files"`
	Bytes       int64           `json:"bytes"`      // of the current tree
	HeldBlobs   int             `json:"held_blobs"` // distinct blobs of the kept generations
	HeldBytes   int64           `json:"held_bytes"`
	Generations []uint64        `json:"generations"` // kept, oldest first
	Log         []repo.LogEntry `json:"log"`         // the import log's latest lines
}

// Status reads the repository at dir without locking it (an import may run
// meanwhile; everything read is either the old or the new generation).
// logLines is how many import log lines to include.
func Status(ctx context.Context, dir string, now time.Time, logLines int) (*StatusReport, error) {
	st := &StatusReport{Repo: dir}
	log, err := repo.ReadLog(dir, logLines)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", dir, err)
	}
	st.Log = log
	cur, err := repo.Current(dir)
	if errors.Is(err, repo.ErrNotRepository) {
		return st, err
	}
	if err != nil {
		return nil, err
	}
	rec, err := repo.ReadRecord(dir, cur)
	if err != nil {
		return nil, err
	}
	st.Sequence, st.BundleID, st.BaseSeq, st.Signer = rec.Sequence, rec.BundleID, rec.BaseSequence, rec.Signer
	st.Created, st.Expires, st.Imported = rec.Created, rec.Expires, rec.Imported
	st.Expired = !rec.Expires.IsZero() && !now.Before(rec.Expires)
	st.Packages, st.Files, st.Bytes = rec.Packages, len(rec.Tree), rec.Bytes
	gens, err := repo.Generations(dir)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, g := range gens {
		if g > cur {
			continue // being built by an import right now
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st.Generations = append(st.Generations, g)
		r := rec
		if g != cur {
			if r, err = repo.ReadRecord(dir, g); err != nil {
				continue // collected meanwhile
			}
		}
		for _, e := range r.Tree {
			if !seen[e.SHA256] {
				seen[e.SHA256] = true
				st.HeldBlobs++
				st.HeldBytes += e.Size
			}
		}
	}
	return st, nil
}
