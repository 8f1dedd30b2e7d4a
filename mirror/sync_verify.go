package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mirror-tool/mirror/mirror/fetch"
	"github.com/mirror-tool/mirror/mirror/state"
	"github.com/mirror-tool/mirror/verify"
)

// verifyItem checks the file against its signatures or its signed checksum
// list; accepted content enters the cache, rejected content is deleted.
func (r *run) verifyItem(ctx context.Context, it *item) error {
	if it.rejected != "" || (r.opt.DryRun && !it.fromCache) {
		return nil
	}
	if r.opt.DryRun {
		return nil
	}
	reject := func(reason string) error {
		it.rejected = reason
		if it.partialPath != "" {
			fetch.RemovePartial(it.partialPath)
		}
		return nil
	}
	// A file from a signed checksum list must have the listed hash; a file
	// with detached signatures must be accepted by them; with both, both.
	if it.fromList != nil && it.fileSHA != it.pkg.SHA256 {
		what := it.fromList.what
		if what == "" {
			what = "the signed checksum list"
		}
		return reject(fmt.Sprintf("SHA-256 %s differs from %s in %s", it.fileSHA, it.pkg.SHA256, what))
	}
	var verdict state.Verified
	remembered := false
	if len(it.sigs) > 0 {
		var sigKeys []string
		if v, ok := r.reusable(it); ok {
			sigKeys, it.schemes = v.Keys, v.Schemes
			verdict, remembered = r.verdict(it, sigKeys, v.At, v.Signed), true
		} else {
			var f *os.File
			var err error
			if it.partialPath != "" {
				f, err = os.Open(it.partialPath)
			} else {
				f, err = r.cache.Open(it.fileSHA) // no link followed
				if errors.Is(err, syscall.ELOOP) {
					err = fmt.Errorf("%w: a link stands in the cache for %s: %w", ErrSync, it.fileSHA, err)
					if rerr := r.cache.Remove(it.fileSHA); rerr == nil {
						err = fmt.Errorf("%w (it was removed; the next run fetches the file again)", err)
					}
				}
			}
			if err != nil {
				return fmt.Errorf("package %s: %w", it.full(), err)
			}
			sigs := make([]verify.Signature, len(it.sigs))
			for i, s := range it.sigs {
				sigs[i] = verify.Signature{Name: sigName(s.url), Data: s.data, File: path.Base(it.pkg.Name)}
			}
			// A file taken from the cache is hashed while it is checked: a
			// copy damaged on disk is the cache's fault, not the upstream's.
			var rd io.Reader = f
			var h hash.Hash
			if it.partialPath == "" {
				h = sha256.New()
				rd = io.TeeReader(f, h)
			}
			ev, err := r.policy.Verify(ctx, rd, sigs, r.now)
			if err == nil && h != nil {
				if _, err = io.Copy(io.Discard, rd); err == nil && hex.EncodeToString(h.Sum(nil)) != it.fileSHA {
					err = fmt.Errorf("%w: the cached copy of %s is damaged", ErrSync, it.full())
					if rerr := r.cache.Remove(it.fileSHA); rerr == nil {
						err = fmt.Errorf("%w (it was removed; the next run fetches it again)", err)
					}
				}
			}
			f.Close()
			if err != nil {
				return fmt.Errorf("package %s: %w", it.full(), err)
			}
			v := r.policy.Decide(it.full(), ev)
			if !v.Accepted {
				return reject(v.Err.Error())
			}
			signed, why := r.notRolledBack(it.full(), it.fileSHA, v.Signed)
			if why != "" {
				return reject(why)
			}
			sigKeys = keyNames(v.Passed)
			it.schemes = map[string]string{}
			for _, res := range ev.Results {
				if res.Key.Scheme != "" && it.schemes[res.Signature] == "" {
					it.schemes[res.Signature] = res.Key.Scheme
				}
			}
			verdict, remembered = r.verdict(it, sigKeys, r.now, signed), true
		}
		for _, k := range sigKeys {
			if !slices.Contains(it.keys, k) {
				it.keys = append(it.keys, k)
			}
		}
	}
	if it.partialPath != "" {
		// Durable at the run's cache.Sync, before anything records it.
		if err := r.cache.AdoptBatched(it.partialPath, it.fileSHA, it.fileSize); err != nil {
			return fmt.Errorf("package %s: %w", it.full(), err)
		}
		it.adopted = true
		hook("adopted")
	}
	// Signatures are fetched whole every run, so they stay in memory for
	// the bundle (no cache write, no fsync per signature; sigData). One
	// lock for the item's records and verdict (a verdict recorded for a
	// run that then fails is never saved).
	var key string
	if remembered {
		key = it.full()
	}
	r.mu.Lock()
	if remembered {
		r.verified.put(key, verdict)
	}
	for _, s := range it.sigs {
		r.records.put(s.url, state.Upstream{SHA256: s.sha, Size: s.size})
	}
	r.records.put(it.pkg.URL, state.Upstream{SHA256: it.fileSHA, Size: it.fileSize})
	if it.fromList != nil {
		it.fromList.used = true
	}
	r.mu.Unlock()
	return r.holdSigs(ctx, it)
}

// maxHeldSigs bounds the bytes of accepted signatures a run holds in memory
// for the bundle; past it, they go to the cache. Signatures are small (a few
// hundred bytes), but a hostile mirror can pad a valid one (OpenPGP's
// unhashed subpackets, up to verify.MaxSignatureSize; minisign's untrusted
// comment, to 1 KiB) for each of 200,000 packages. A variable for tests.
var maxHeldSigs int64 = 64 << 20

// holdSigs keeps an accepted item's signatures in memory for the bundle
// while the run holds less than maxHeldSigs of them, and moves the others
// into the cache (where openBlob finds them; the records, which point to
// them, keep them there).
func (r *run) holdSigs(ctx context.Context, it *item) error {
	for i := range it.sigs {
		s := &it.sigs[i]
		if r.sigsHeld.Add(s.size) <= maxHeldSigs {
			continue
		}
		if err := r.cache.PutBatched(ctx, bytes.NewReader(s.data), s.sha, s.size); err != nil {
			return fmt.Errorf("package %s: %w", it.full(), err)
		}
		s.data = nil
		r.sigsHeld.Add(-s.size)
	}
	return nil
}

// dropSigs lets go of a refused item's signatures: nothing needs them.
func dropSigs(it *item) {
	for i := range it.sigs {
		it.sigs[i].data = nil
	}
}

// sigsDigest identifies a package's signature files: the SHA-256 of a
// line "URL SHA256" per signature.
func sigsDigest(sigs []small) string {
	d := sigsDigestHex(sigs)
	return string(d[:])
}

// sigsDigestHex is sigsDigest as hex digits in an array: a package's
// signature lines are hashed from one small buffer (on the stack for the
// usual one or two signatures), and nothing is allocated.
func sigsDigestHex(sigs []small) [2 * sha256.Size]byte {
	var stack [512]byte
	b := stack[:0]
	for _, s := range sigs {
		b = append(b, s.url...)
		b = append(b, ' ')
		b = append(b, s.sha...)
		b = append(b, '\n')
	}
	sum := sha256.Sum256(b)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return out
}

// sigsSum is sigsDigest(it.sigs), computed once (reusable and remember
// both need it).
func (it *item) sigsSum() string {
	if it.sigsDigest == "" {
		it.sigsDigest = sigsDigest(it.sigs)
	}
	return it.sigsDigest
}

// sigsAre reports whether it's signatures have the digest want, without
// allocating; when they do, want becomes the item's sigsSum (shared with
// the remembered verdict instead of a copy per package).
func (it *item) sigsAre(want string) bool {
	if it.sigsDigest != "" {
		return it.sigsDigest == want
	}
	d := sigsDigestHex(it.sigs)
	if string(d[:]) != want {
		return false
	}
	it.sigsDigest = want
	return true
}

// reusable returns the remembered verdict for a cached file when it still
// holds: same file, signatures and trust table, only time-independent
// schemes (minisign, SSH: no key expiry of their own), and no trust-table
// window boundary passed since it was made.
func (r *run) reusable(it *item) (state.Verified, bool) {
	if !it.fromCache || len(it.sigs) == 0 {
		return state.Verified{}, false
	}
	// A remembered verdict spares only the check of a file that an earlier
	// bundle carried, and only in a delta: whatever this run's bundle
	// carries is verified by this run, so a verdict written into the
	// state folder by someone else cannot put a file into a bundle.
	if r.opt.Full || r.opt.Since != "" {
		return state.Verified{}, false
	}
	if _, shipped := r.st.Shipped[it.fileSHA]; !shipped {
		return state.Verified{}, false
	}
	v, ok := r.st.Verified[it.full()]
	if !ok || v.File != it.fileSHA || !it.sigsAre(v.Sigs) || v.Trust != r.trustSHA || len(v.Keys) == 0 || r.now.Before(v.At) {
		return state.Verified{}, false
	}
	for _, s := range v.Schemes {
		if s != verify.SchemeMinisign && s != verify.SchemeSSH {
			return state.Verified{}, false
		}
	}
	for _, k := range r.cfg.Trust.Keys {
		for _, t := range []*time.Time{k.NotBefore, k.NotAfter, k.Revoked} {
			if t != nil && t.After(v.At) && !t.After(r.now) {
				return state.Verified{}, false
			}
		}
	}
	return v, true
}

// verdict is the accepted verdict verifyItem remembers for it.
func (r *run) verdict(it *item, keys []string, at, signed time.Time) state.Verified {
	return state.Verified{File: it.fileSHA, Sigs: it.sigsSum(), Trust: r.trustSHA, Keys: keys, Schemes: it.schemes, At: at, Signed: signed}
}

// notRolledBack refuses an upstream rollback of a package (or checksum
// list) under key: content other than what was accepted last time, whose
// signatures state a signing time before the newest one accepted for it
// earlier. A stale or malicious mirror can serve an old release with its
// own, valid signatures; the time inside them is what gives it away. It
// returns the signing time to remember (the newer of the two), or why the
// content is refused. Content whose signatures state no time (SSH, a
// minisign comment the signer wrote itself) cannot be compared: it passes,
// and the earlier time stays the mark.
func (r *run) notRolledBack(key, sha string, signed time.Time) (time.Time, string) {
	// A signer whose clock ran ahead (minisign's timestamp is not checked
	// against ours) must not set a mark that its next, correctly dated
	// release could never pass: the mark goes no later than this run's
	// second (signing times have one-second resolution: a release signed
	// later in that same second states that second, and must pass).
	if now := r.now.Truncate(time.Second); signed.After(now) {
		signed = now
	}
	prev, ok := r.st.Verified[key]
	if !ok || !prev.Signed.After(signed) {
		return signed, "" // nothing to compare with, or not older
	}
	switch {
	case prev.File == sha || signed.IsZero():
		return prev.Signed, "" // the same content, or no time to compare: the mark stays
	case r.acceptRollback(key):
		return signed, "" // the operator accepted the older release: the new mark
	}
	return time.Time{}, fmt.Sprintf("%v: signed %s, before the version mirrored earlier (signed %s): a stale or malicious mirror serves an older, validly signed file under this name; it is left out of this bundle. If the upstream really went back, run sync once with --accept-rollback '%s'",
		ErrUpstreamRollback, signed.UTC().Format(time.RFC3339), prev.Signed.UTC().Format(time.RFC3339), strings.TrimSuffix(key, listKeySuffix))
}

// acceptRollback reports whether the operator accepted an older release
// of key for this run (SyncOptions.AcceptRollback).
func (r *run) acceptRollback(key string) bool {
	for _, p := range r.opt.AcceptRollback {
		if ok, _ := path.Match(p, key); ok {
			return true
		}
	}
	return false
}

// carryVerified keeps the remembered verdict of key when this run did not
// accept anything for it (rejected, or its checksum list failed): the next
// run still compares with the last accepted version, so that a rollback
// refused once is not accepted on the next try.
func (r *run) carryVerified(key string) {
	r.mu.Lock()
	r.verified.carry(key)
	r.mu.Unlock()
}

// markRetention is how long the verdict (and so the rollback mark) of a
// package that no run has seen since stays in the state.
const markRetention = 400 * 24 * time.Hour

// carryMarks keeps in the next state the verdicts of packages (and checksum
// lists) of configured sources that this run did not see, for
// markRetention after they were last accepted: an upstream that leaves a
// package out of its listing for one run must not erase the signing time
// the package's next version is compared with. A source taken out of the
// configuration drops its verdicts. Called once every verdict of the run
// is in.
func (r *run) carryMarks() {
	sources := make(map[string]bool, len(r.cfg.Sources))
	for _, s := range r.cfg.Sources {
		sources[s.Name] = true
	}
	r.verified.missing(func(k string, v state.Verified) {
		src, _, _ := strings.Cut(k, ":")
		if sources[src] && r.now.Sub(v.At) < markRetention {
			r.verified.put(k, v)
		}
	})
}
