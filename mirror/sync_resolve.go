package mirror

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/mirror/fetch"
	"github.com/mirror-tool/mirror/mirror/source/files"
	"github.com/mirror-tool/mirror/mirror/state"
	"github.com/mirror-tool/mirror/verify"
)

// carryRecord keeps the state's record of u in the next state (and so its
// blob in the cache) unless this run recorded u itself.
func (r *run) carryRecord(u string) {
	r.mu.Lock()
	r.records.carry(u)
	r.mu.Unlock()
}

func rejected(src *SourceConfig, name, reason string) PackageResult {
	return PackageResult{Source: src.Name, Name: name, Status: StatusRejected, Reason: reason}
}

// resolve turns a source into pipeline items, and the files that are
// rejected before any download (not in the signed list, list signer not
// allowed for them).
func (r *run) resolve(ctx context.Context, src *SourceConfig) ([]*item, []PackageResult, error) {
	if src.Apt != nil {
		return r.resolveApt(ctx, src)
	}
	fc := src.Files
	var client *fetch.Client
	var listing []string
	pre := r.pre[src]
	if pre != nil {
		if pre.err != nil {
			return nil, nil, pre.err
		}
		client, listing = pre.client, pre.listing
	} else {
		var err error
		if client, err = r.client(src); err != nil {
			return nil, nil, err
		}
		if fc.Listing != "" {
			if listing, err = r.listing(ctx, client, src); err != nil {
				return nil, nil, err
			}
		}
	}
	var rej []PackageResult
	var sums map[string]string
	var list *listInfo
	var listPath string
	var ev *verify.Evidence
	var listDocs []*small
	var listVerdict state.Verified
	var listKeyName string
	if fc.Checksums != "" {
		listURL, sigURL, dir := fc.ChecksumsURLs()
		listPath = fc.Publish(listURL)
		doc, err := r.getSmall(ctx, client, listURL, files.MaxChecksumsSize, true)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: source %q: checksum list: %w", ErrSync, src.Name, err)
		}
		doc.path = listPath
		var sig *small
		if sigURL != "" {
			s, err := r.getSmall(ctx, client, sigURL, verify.MaxSignatureSize, true)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: source %q: checksum list signature: %w", ErrSync, src.Name, err)
			}
			s.path = fc.Publish(sigURL)
			sig = &s
		}
		lk := listKey(src, listPath)
		plain, e, why := r.verifyList(ctx, doc, sig)
		if why == "" {
			if sums, err = files.ParseChecksums(plain, dir); err != nil {
				why = fmt.Sprintf("checksum list %s: %v", listPath, err)
			}
		}
		if why != "" {
			// Nothing from an unverifiable list is taken.
			r.carryVerified(lk)
			return nil, []PackageResult{rejected(src, fc.Checksums, why+"; none of its files were taken")}, nil
		}
		ev = e
		list = &listInfo{}
		scheme := evidenceScheme(ev, "openpgp")
		if sig != nil {
			list.sigs = []bundle.PackageSignature{{Path: doc.path, SHA256: doc.sha, Scheme: schemeChecksums}, {Path: sig.path, SHA256: sig.sha, Scheme: scheme}}
		} else {
			list.sigs = []bundle.PackageSignature{{Path: doc.path, SHA256: doc.sha, Scheme: scheme + suffixClearsigned}}
		}
		listDocs = []*small{&doc, sig}
		listVerdict = state.Verified{File: doc.sha, Sigs: listSigsDigest(doc, sig), Trust: r.trustSHA, Keys: validKeys(ev), At: r.now}
		r.carryVerified(lk) // replaced below when the list is used
		listKeyName = lk
	}
	var pkgs []files.Package
	var rj []files.Rejected
	if pre != nil && fc.Checksums == "" {
		pkgs, rj = pre.pkgs, pre.rej
		if pre.clash {
			pkgs, rj = r.settleClashes(src, pkgs, rj)
		}
	} else {
		var err error
		if pkgs, rj, err = fc.Packages(listing, sums, listPath); err != nil {
			return nil, nil, err
		}
		var clash bool
		if pkgs, rj, clash = servable(pkgs, rj); clash {
			pkgs, rj = r.settleClashes(src, pkgs, rj)
		}
	}
	for _, x := range rj {
		rej = append(rej, rejected(src, x.Name, x.Reason))
	}
	var items []*item
	// The list's signing time, for the rollback check, is the newest one
	// among the signatures that passed for a file taken: a key allowed
	// for none of them (another project's, say) cannot vouch for the
	// list's age with a fresh signature over an old list.
	var listSigned time.Time
	for _, p := range pkgs {
		it := &item{src: src, client: client, pkg: p}
		if list != nil {
			v := r.policy.Decide(it.full(), ev)
			if !v.Accepted {
				rej = append(rej, rejected(src, p.Name, fmt.Sprintf("checksum list %s: %v", listPath, v.Err)))
				continue
			}
			it.fromList = list
			it.keys = keyNames(v.Passed)
			if v.Signed.After(listSigned) {
				listSigned = v.Signed
			}
		}
		items = append(items, it)
	}
	if list != nil && len(items) > 0 {
		signed, why := r.notRolledBack(listKeyName, listVerdict.File, listSigned)
		if why != "" {
			// Nothing from a rolled-back list is taken (its mark was
			// carried above).
			return nil, []PackageResult{rejected(src, fc.Checksums, fmt.Sprintf("checksum list %s: %s; none of its files were taken", listPath, why))}, nil
		}
		listVerdict.Signed = signed
		// The list was accepted for at least one file: it enters the cache
		// (for conditional requests next time) and, when a file from it
		// passes its hash check, the publish tree; its signing time is the
		// mark for the next run's rollback check.
		r.mu.Lock()
		r.verified.put(listKeyName, listVerdict)
		r.mu.Unlock()
		for _, d := range listDocs {
			if d == nil {
				continue
			}
			if err := r.cache.Put(ctx, bytes.NewReader(d.data), d.sha, int64(len(d.data))); err != nil {
				return nil, nil, err
			}
			r.record(d.url, state.Upstream{SHA256: d.sha, Size: int64(len(d.data)), ETag: d.v.ETag, LastModified: d.v.LastModified})
			r.extras = append(r.extras, extra{source: src.Name, path: d.path, sha: d.sha, size: int64(len(d.data)), used: &list.used})
		}
	}
	return items, rej, nil
}

// verifyList checks a checksum list's signature (detached or clearsigned)
// and returns the signed text and the evidence, or why it cannot be used.
func (r *run) verifyList(ctx context.Context, doc small, sig *small) ([]byte, *verify.Evidence, string) {
	if sig != nil {
		ev, err := r.policy.Verify(ctx, bytes.NewReader(doc.data), []verify.Signature{{Name: path.Base(sig.path), Data: sig.data, File: path.Base(doc.path)}}, r.now)
		if err != nil {
			return nil, nil, fmt.Sprintf("checksum list %s: %v", doc.path, err)
		}
		return doc.data, ev, ""
	}
	if !files.IsClearsigned(doc.data) {
		return nil, nil, fmt.Sprintf("checksum list %s is not clearsigned and no checksums_signature is configured", doc.path)
	}
	plain, ev, err := r.policy.VerifyClearsigned(ctx, doc.data, r.now)
	if err != nil {
		return nil, nil, fmt.Sprintf("checksum list %s: %v", doc.path, err)
	}
	return plain, ev, ""
}

func evidenceScheme(ev *verify.Evidence, def string) string {
	if ev != nil {
		for _, res := range ev.Results {
			if res.Key.Scheme != "" {
				return res.Key.Scheme
			}
		}
	}
	return def
}

// validKeys names the keys that made a valid signature.
func validKeys(ev *verify.Evidence) []string {
	var out []string
	for _, res := range ev.Results {
		if res.Err == nil && !slices.Contains(out, res.Key.Name) {
			out = append(out, res.Key.Name)
		}
	}
	return out
}

func listSigsDigest(doc small, sig *small) string {
	if sig == nil {
		return sigsDigest([]small{doc})
	}
	return sigsDigest([]small{*sig})
}

func keyNames(refs []verify.KeyRef) []string {
	out := make([]string, 0, len(refs))
	for _, k := range refs {
		out = append(out, k.Name)
	}
	return out
}

// listing reads the source's listing: a local file or a URL.
func (r *run) listing(ctx context.Context, client *fetch.Client, src *SourceConfig) ([]string, error) {
	where, isURL := src.Files.ListingURL()
	var data []byte
	if isURL {
		body, _, _, err := client.Get(ctx, where, files.MaxListingSize, fetch.Validators{})
		if err != nil {
			return nil, fmt.Errorf("%w: source %q: listing: %w", ErrSync, src.Name, err)
		}
		data = body
	} else {
		f, err := os.Open(where)
		if err != nil {
			return nil, fmt.Errorf("source %q: listing: %w", src.Name, err)
		}
		data, err = io.ReadAll(io.LimitReader(f, files.MaxListingSize+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("source %q: listing %s: %w", src.Name, where, err)
		}
	}
	l, err := files.ParseListing(data)
	if err != nil {
		return nil, fmt.Errorf("source %q: listing %s: %w", src.Name, where, err)
	}
	return l, nil
}

// getSmall fetches a small document, conditionally when its last verified
// version is in the cache (a 304 answer reads it from there).
func (r *run) getSmall(ctx context.Context, c *fetch.Client, u string, max int64, conditional bool) (small, error) {
	rec, had := r.st.Upstreams[u]
	var prev fetch.Validators
	if conditional && had && (rec.ETag != "" || rec.LastModified != "") {
		if ok, _ := r.cache.Has(rec.SHA256); ok {
			prev = fetch.Validators{ETag: rec.ETag, LastModified: rec.LastModified}
		}
	}
	body, v, notModified, err := c.Get(ctx, u, max, prev)
	if err != nil {
		return small{}, err
	}
	s := small{url: u, v: v}
	if notModified {
		f, err := r.cache.Open(rec.SHA256)
		if err != nil {
			return small{}, err
		}
		body, err = io.ReadAll(io.LimitReader(f, max+1))
		f.Close()
		if err != nil {
			return small{}, err
		}
		if int64(len(body)) > max {
			return small{}, fmt.Errorf("cached copy of %s is larger than %d bytes", u, max)
		}
		s.data, s.sha, s.size = body, rec.SHA256, int64(len(body))
		return s, nil
	}
	return r.smallOf(u, body, v), nil
}

// smallOf is the small document body fetched from u.
func (r *run) smallOf(u string, body []byte, v fetch.Validators) small {
	s := small{url: u, v: v, data: body, sha: sha256Hex(body), size: int64(len(body))}
	rec, had := r.st.Upstreams[u]
	s.changed = !had || rec.SHA256 != s.sha
	return s
}

// listKey is where the verdict of a source's checksum list is remembered:
// beside the packages, under a name no package can have (package names
// hold no control characters).
func listKey(src *SourceConfig, listPath string) string {
	return src.Name + ":" + listPath + listKeySuffix
}

const listKeySuffix = "\tchecksums"

// plainBase is sigName without url.Parse for the common URL
// "http(s)://HOST[:PORT]/PATH" whose host is lowercase letters, digits,
// dots and dashes, whose port is digits, and whose path holds only
// letters, digits and "-._~/" (nothing to unescape, no query or
// fragment): its last element, as url.Parse and path.Base give it
// (FuzzSigName). ok is false for any other URL.
func plainBase(u string) (string, bool) {
	var rest string
	switch {
	case strings.HasPrefix(u, "https://"):
		rest = u[len("https://"):]
	case strings.HasPrefix(u, "http://"):
		rest = u[len("http://"):]
	default:
		return "", false
	}
	slash := strings.IndexByte(rest, '/')
	if slash <= 0 {
		return "", false
	}
	host, p := rest[:slash], rest[slash:]
	colon := false
	for i := 0; i < len(host); i++ {
		switch c := host[i]; {
		case c == ':' && !colon && i > 0 && i < len(host)-1:
			colon = true
		case '0' <= c && c <= '9', !colon && ('a' <= c && c <= 'z' || c == '.' || c == '-'):
		default:
			return "", false
		}
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
			return "", false
		}
	}
	b := p[strings.LastIndexByte(p, '/')+1:]
	if b == "" || b == "." || b == ".." {
		return "", false // path.Base cleans these: left to the slow path
	}
	return b, true
}

func sigName(u string) string {
	if b, ok := plainBase(u); ok {
		return b
	}
	if pu, err := url.Parse(u); err == nil {
		return path.Base(pu.Path)
	}
	return u
}
