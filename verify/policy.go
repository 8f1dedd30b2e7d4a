package verify

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"time"
)

// Limits on the signatures of one file.
const (
	// MaxSignatures bounds the signature files checked for one file.
	MaxSignatures = 64
	// MaxSignatureSize bounds one signature file.
	MaxSignatureSize = 64 << 10
	// MaxSignaturesPerFile bounds the OpenPGP signature packets in one
	// signature file.
	MaxSignaturesPerFile = 16
	// MaxClearsignedSize bounds a clearsigned document (SHA256SUMS.asc,
	// InRelease).
	MaxClearsignedSize = 64 << 20
)

// Signature is one detached signature file as downloaded.
type Signature struct {
	Name string // e.g. "hello.tar.gz.asc", for messages
	Data []byte
	// File is the name the signed file is served under (its last path
	// element), when the caller knows it. A minisign signature whose
	// trusted comment names another file (`file:NAME`, as minisign writes
	// by default) then fails with ErrWrongFile. "" checks no name.
	File string
}

// Evidence is what Verify found: one Result per signature (an OpenPGP file
// holding several signatures gives several Results with the same name).
// It says nothing about packages yet; Decide applies scopes and thresholds.
type Evidence struct {
	Results []Result `json:"results"`
}

// Result is the outcome of one signature: made validly by Key, or Err.
type Result struct {
	Signature string `json:"signature"`
	Key       KeyRef `json:"key"`              // zero Name when no trusted key was identified
	Err       error  `json:"-"`                // nil when valid; wraps one of the Err* reasons
	Reason    string `json:"reason,omitempty"` // Err's message, for JSON
	// Signed is when the signature says it was made, when the signed data
	// says so (an OpenPGP signature's creation time; the `timestamp:` of a
	// minisign trusted comment); zero otherwise (SSH signatures carry no
	// time). It is the signer's claim, authenticated by the signature.
	Signed time.Time `json:"signed,omitzero"`
}

// Verdict is the decision for one package.
type Verdict struct {
	Package   string             `json:"package"`
	Accepted  bool               `json:"accepted"`
	Threshold int                `json:"threshold"` // distinct keys needed
	Passed    []KeyRef           `json:"passed"`    // distinct allowed keys with a valid signature
	Failures  []SignatureFailure `json:"failures"`  // signatures that did not count, with why
	Err       error              `json:"-"`         // nil when accepted; else the decisive reason
	Reason    string             `json:"reason,omitempty"`
	// Signed is the newest Result.Signed among the signatures that
	// counted (Passed); zero when none of them carries a time.
	Signed time.Time `json:"signed,omitzero"`
}

// SignatureFailure is one signature that did not count for a package.
type SignatureFailure struct {
	Signature string `json:"signature"`
	Key       KeyRef `json:"key"`
	Err       error  `json:"-"`
	Reason    string `json:"reason"`
}

// String explains the verdict for people, one line per signature.
func (v Verdict) String() string {
	var b strings.Builder
	names := make([]string, len(v.Passed))
	for i, k := range v.Passed {
		names[i] = k.Name
	}
	if v.Accepted {
		keys := "keys"
		if len(v.Passed) == 1 {
			keys = "key"
		}
		fmt.Fprintf(&b, "%s: accepted: signed by %d distinct allowed %s, %d required (%s)\n", v.Package, len(v.Passed), keys, v.Threshold, strings.Join(names, ", "))
	} else {
		// The reason may begin with the package's name already.
		fmt.Fprintf(&b, "%s: rejected: %s\n", v.Package, strings.TrimPrefix(fmt.Sprint(v.Err), v.Package+": "))
	}
	for _, k := range v.Passed {
		fmt.Fprintf(&b, "  ok    key %q (%s %s)\n", k.Name, k.Scheme, k.ID)
	}
	for _, f := range v.Failures {
		fmt.Fprintf(&b, "  fail  %v\n", f.Err)
	}
	return b.String()
}

// check is one signature being verified: parsed, waiting for the file's
// bytes (through the feed), then finished.
type check struct {
	sig    string
	key    *trustedKey
	ref    KeyRef
	reason error
	detail string
	signed time.Time // the signature's own claim of when it was made
	finish func() (reason error, detail string)
}

// trimReason drops the reason's own text from err's message, since a
// SignatureError prints the reason itself.
func trimReason(err, reason error) string {
	return strings.TrimPrefix(err.Error(), reason.Error()+": ")
}

func failed(sig string, reason error, format string, args ...any) *check {
	return &check{sig: sig, reason: reason, detail: fmt.Sprintf(format, args...)}
}

// feed collects the writers the file is copied into: one hash per needed
// algorithm (shared by every signature that needs it) and verifiers.
type feed struct {
	hashes  map[string]hash.Hash
	writers []io.Writer
}

// hash returns the shared hash named id, made by mk on first use. The
// returned writer is what the file is written to (it may canonicalize), the
// hash is the state to clone when the file is done.
func (f *feed) hash(id string, mk func() (io.Writer, hash.Hash)) hash.Hash {
	if h, ok := f.hashes[id]; ok {
		return h
	}
	if f.hashes == nil {
		f.hashes = map[string]hash.Hash{}
	}
	w, h := mk()
	f.hashes[id] = h
	f.writers = append(f.writers, w)
	return h
}

func (f *feed) add(w io.Writer) { f.writers = append(f.writers, w) }

// sum clones h (so several signatures can append their own trailers) and
// returns the clone.
func sum(h hash.Hash) (hash.Hash, error) {
	c, ok := h.(hash.Cloner)
	if !ok {
		return nil, fmt.Errorf("%w: hash %T cannot be cloned", ErrUnsupported, h)
	}
	return c.Clone()
}

// copyBuffers holds the buffers the signed files are copied through.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Verify checks every signature over file: the cryptography, the OpenPGP
// key's own expiry, revocation and creation time, and the trust file's
// not_before / not_after / revoked, all at now. The file is read once, in
// constant memory, however many signatures there are. The error is only for
// reading the file (or ctx); every problem with a signature is a Result.
func (p *Policy) Verify(ctx context.Context, file io.Reader, sigs []Signature, now time.Time) (*Evidence, error) {
	var checks []*check
	f := &feed{}
	for i, s := range sigs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if i >= MaxSignatures {
			checks = append(checks, failed(s.Name, ErrMalformed, "more than %d signatures for one file; the rest are ignored", MaxSignatures))
			break
		}
		checks = append(checks, p.parse(s, f, now)...)
	}
	if len(f.writers) > 0 {
		buf := copyBuffers.Get().(*[]byte)
		_, err := io.CopyBuffer(io.MultiWriter(f.writers...), ctxReader{ctx, file}, *buf)
		copyBuffers.Put(buf)
		if err != nil {
			return nil, fmt.Errorf("verify: read the signed file: %w", err)
		}
	}
	ev := &Evidence{Results: make([]Result, 0, len(checks))}
	for _, c := range checks {
		if c.reason == nil && c.finish != nil {
			c.reason, c.detail = c.finish()
		}
		if c.reason == nil && c.key != nil {
			c.reason, c.detail = c.key.window(now)
		}
		r := Result{Signature: c.sig, Key: c.ref}
		if c.reason == nil {
			r.Signed = c.signed
		}
		if c.reason != nil {
			r.Err = &SignatureError{Signature: c.sig, Key: c.ref, Reason: c.reason, Detail: c.detail}
			r.Reason = r.Err.Error()
		}
		ev.Results = append(ev.Results, r)
	}
	return ev, nil
}

// parse sorts a signature by its scheme and prepares its checks.
func (p *Policy) parse(s Signature, f *feed, now time.Time) []*check {
	if len(s.Data) > MaxSignatureSize {
		return []*check{failed(s.Name, ErrMalformed, "larger than %d bytes", MaxSignatureSize)}
	}
	t := strings.TrimLeft(string(s.Data[:min(len(s.Data), 64)]), " \t\r\n")
	switch {
	case strings.HasPrefix(t, "untrusted comment:"):
		return []*check{p.parseMinisign(s, f)}
	case strings.HasPrefix(t, sshBegin):
		return []*check{p.parseSSH(s, f)}
	case strings.HasPrefix(t, "-----BEGIN PGP SIGNED MESSAGE-----"):
		return []*check{failed(s.Name, ErrMalformed, "a clearsigned document, not a detached signature; check it with VerifyClearsigned")}
	case strings.HasPrefix(t, "-----BEGIN PGP SIGNATURE-----"), len(s.Data) > 0 && s.Data[0]&0x80 != 0:
		return p.parseOpenPGP(s.Name, s.Data, f, now)
	}
	return []*check{failed(s.Name, ErrMalformed, "not an OpenPGP, minisign or SSH signature")}
}

// rank orders reasons from the most to the least telling, to pick the
// decisive one when no key passed.
var rank = []error{ErrNotAllowed, ErrKeyRevoked, ErrKeyExpired, ErrKeyNotYetValid, ErrSignatureExpired,
	ErrWrongFile, ErrBadSignature, ErrUnsupported, ErrUnknownKey, ErrMalformed}

func rankOf(err error) int {
	for i, r := range rank {
		if errors.Is(err, r) {
			return i
		}
	}
	return len(rank)
}

// Decide applies the allow lists and thresholds to ev for package pkg
// ("source:name"). It can be called many times on one Evidence: a signed
// checksum list is verified once, then decided for every file it lists.
func (p *Policy) Decide(pkg string, ev *Evidence) Verdict {
	v := Verdict{Package: pkg, Passed: []KeyRef{}, Failures: []SignatureFailure{}}
	if err := checkPackage(pkg); err != nil {
		v.Err = err
		v.Reason = err.Error()
		return v
	}
	v.Threshold = p.threshold(pkg)
	seen := map[string]bool{}
	if ev != nil {
		for _, r := range ev.Results {
			fail := func(err error) {
				v.Failures = append(v.Failures, SignatureFailure{Signature: r.Signature, Key: r.Key, Err: err, Reason: err.Error()})
			}
			if r.Err != nil {
				fail(r.Err)
				continue
			}
			k := p.byName(r.Key.Name)
			if k == nil {
				fail(&SignatureError{Signature: r.Signature, Key: r.Key, Reason: ErrUnknownKey, Detail: "the evidence names a key this policy does not have"})
				continue
			}
			if !k.allows(pkg) {
				fail(&NotAllowedError{Package: pkg, Signature: r.Signature, Key: r.Key})
				continue
			}
			if !seen[r.Key.Name] {
				seen[r.Key.Name] = true
				v.Passed = append(v.Passed, r.Key)
			}
			if r.Signed.After(v.Signed) {
				v.Signed = r.Signed
			}
		}
	}
	if len(v.Passed) >= v.Threshold {
		v.Accepted = true
		return v
	}
	if len(v.Passed) == 0 && len(v.Failures) > 0 {
		best := v.Failures[0].Err
		for _, f := range v.Failures[1:] {
			if rankOf(f.Err) < rankOf(best) {
				best = f.Err
			}
		}
		if errors.Is(best, ErrNotAllowed) {
			v.Err = best
		} else {
			v.Err = fmt.Errorf("%s: %w", pkg, best)
		}
	} else {
		names := make([]string, len(v.Passed))
		for i, k := range v.Passed {
			names[i] = k.Name
		}
		var failed []string
		for _, f := range v.Failures[:min(len(v.Failures), 3)] {
			failed = append(failed, f.Reason)
		}
		v.Err = &ThresholdError{Package: pkg, Need: v.Threshold, Have: len(v.Passed), Keys: names, Failed: failed}
	}
	v.Reason = v.Err.Error()
	return v
}

func (p *Policy) byName(name string) *trustedKey { return p.byKey[name] }

// Check is Verify then Decide for one package. The error is only for
// reading the file; a rejection is a Verdict with Accepted false.
func (p *Policy) Check(ctx context.Context, pkg string, file io.Reader, sigs []Signature, now time.Time) (Verdict, error) {
	ev, err := p.Verify(ctx, file, sigs, now)
	if err != nil {
		return Verdict{}, err
	}
	return p.Decide(pkg, ev), nil
}
