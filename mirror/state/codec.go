package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// The v2 state file (Format) is binary, because sync reads it on every run
// and a 20,000-package state in JSON (v1) took 0.17 s to decode:
//
//	file    = "mirror-sync-state/v2\n" body sum
//	sum     = SHA-256 of everything before it (32 bytes)
//	body    = *(tag value) 0x00
//
// Every integer is an unsigned varint (encoding/binary's Uvarint). The
// top-level tags are:
//
//	1 sequence  uvarint
//	2 bundle    str
//	3 digest    str
//	4 shipped   count, count x (key, uvarint sequence)
//	5 upstreams count, count x (key, record)
//	6 verified  count, count x (key, record)
//
// A record is *(field value) 0x00, fields in increasing order, a field left
// out when it holds its zero value. Upstream fields: 1 sha256 str, 2 size
// uvarint, 3 etag str, 4 last_modified str. Verified fields: 1 file str,
// 2 sigs str, 3 trust str, 4 keys (count, count x str), 5 schemes (count,
// count x (str name, str scheme), names increasing), 6 at time, 7 signed
// time. A time is a str holding time.Time.MarshalBinary's bytes.
//
// A map's keys come in strictly increasing order, each one as a uvarint
// (bytes shared with the previous key) and a str (the rest). A str is a
// kind byte and its bytes: 0 and a uvarint length and the bytes; 1 and the
// 32 bytes of a lowercase-hex SHA-256 (the string is their hex); 2 alone:
// the same string as the previous str of the same field (trust tables, key
// and scheme names repeat in every record).
//
// A reader refuses unknown tags and fields (a newer format must change the
// version line), counts or lengths beyond the bytes left, keys out of
// order, and a wrong sum. Adding a field: a new field number written by
// encodeUpstream/encodeVerified and read by the matching decoder
// (TestCodecCoversEveryField fails until both know it).

const (
	tagEnd = iota
	tagSequence
	tagBundle
	tagDigest
	tagShipped
	tagUpstreams
	tagVerified
)

// String kinds.
const (
	strBytes = iota
	strHash
	strRepeat
)

// String slots: a repeated string refers to the previous string of the same
// slot.
const (
	slotKey = iota
	slotBundle
	slotDigest
	slotSHA
	slotETag
	slotLastModified
	slotFile
	slotSigs
	slotTrust
	slotKeyName
	slotSchemeName
	slotScheme
	slotTime
	numSlots
)

var magicV2 = []byte(Format + "\n")

// maxPrealloc bounds the room made up front for a count read from the file
// (a count is only checked against the bytes left, which allow 64 million
// entries in a MaxStateSize file): a damaged count cannot make the reader
// allocate gigabytes before it fails. 20,000 packages make 40,000 entries.
const maxPrealloc = 1 << 17

type encoder struct {
	b    []byte
	last [numSlots]string
	had  [numSlots]bool
}

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *encoder) str(slot int, s string) {
	if e.had[slot] && e.last[slot] == s {
		e.b = append(e.b, strRepeat)
		return
	}
	e.had[slot], e.last[slot] = true, s
	if validSHA256(s) {
		e.b = append(e.b, strHash)
		e.b, _ = hex.AppendDecode(e.b, []byte(s))
		return
	}
	e.b = append(e.b, strBytes)
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) time(t time.Time) error {
	b, err := t.MarshalBinary()
	if err != nil {
		return err
	}
	e.str(slotTime, string(b))
	return nil
}

// key writes a map key after prev (keys are written in increasing order).
func (e *encoder) key(prev, k string) {
	n := 0
	for n < len(prev) && n < len(k) && prev[n] == k[n] {
		n++
	}
	e.uvarint(uint64(n))
	e.b = append(e.b, strBytes)
	e.uvarint(uint64(len(k) - n))
	e.b = append(e.b, k[n:]...)
}

// encode returns the v2 file of s.
func encode(s *State) ([]byte, error) {
	e := &encoder{b: make([]byte, 0, 64+len(s.Shipped)*36+len(s.Upstreams)*80+len(s.Verified)*160)}
	e.b = append(e.b, magicV2...)
	e.uvarint(tagSequence)
	e.uvarint(s.Sequence)
	if s.Bundle != "" {
		e.uvarint(tagBundle)
		e.str(slotBundle, s.Bundle)
	}
	if s.Digest != "" {
		e.uvarint(tagDigest)
		e.str(slotDigest, s.Digest)
	}
	encodeMap(e, tagShipped, s.Shipped, func(v uint64) error { e.uvarint(v); return nil })
	if err := encodeMap(e, tagUpstreams, s.Upstreams, e.upstream); err != nil {
		return nil, fmt.Errorf("upstream %w", err)
	}
	if err := encodeMap(e, tagVerified, s.Verified, e.verified); err != nil {
		return nil, fmt.Errorf("verdict for %w", err)
	}
	e.uvarint(tagEnd)
	sum := sha256.Sum256(e.b)
	return append(e.b, sum[:]...), nil
}

// encodeMap writes section tag: the count, then m's entries in key order,
// each key sharing its prefix with the one before, its value written by val.
// An error names the key.
func encodeMap[V any](e *encoder, tag uint64, m map[string]V, val func(V) error) error {
	e.uvarint(tag)
	e.uvarint(uint64(len(m)))
	prev := ""
	for _, k := range slices.Sorted(maps.Keys(m)) {
		e.key(prev, k)
		if err := val(m[k]); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		prev = k
	}
	return nil
}

func (e *encoder) upstream(u Upstream) error {
	if u.SHA256 != "" {
		e.uvarint(1)
		e.str(slotSHA, u.SHA256)
	}
	if u.Size < 0 {
		return fmt.Errorf("negative size %d", u.Size)
	}
	if u.Size != 0 {
		e.uvarint(2)
		e.uvarint(uint64(u.Size))
	}
	if u.ETag != "" {
		e.uvarint(3)
		e.str(slotETag, u.ETag)
	}
	if u.LastModified != "" {
		e.uvarint(4)
		e.str(slotLastModified, u.LastModified)
	}
	e.uvarint(0)
	return nil
}

func (e *encoder) verified(v Verified) error {
	if v.File != "" {
		e.uvarint(1)
		e.str(slotFile, v.File)
	}
	if v.Sigs != "" {
		e.uvarint(2)
		e.str(slotSigs, v.Sigs)
	}
	if v.Trust != "" {
		e.uvarint(3)
		e.str(slotTrust, v.Trust)
	}
	if len(v.Keys) > 0 {
		e.uvarint(4)
		e.uvarint(uint64(len(v.Keys)))
		for _, k := range v.Keys {
			e.str(slotKeyName, k)
		}
	}
	if len(v.Schemes) > 0 {
		e.uvarint(5)
		e.uvarint(uint64(len(v.Schemes)))
		for _, name := range slices.Sorted(maps.Keys(v.Schemes)) {
			e.str(slotSchemeName, name)
			e.str(slotScheme, v.Schemes[name])
		}
	}
	if !v.At.IsZero() {
		e.uvarint(6)
		if err := e.time(v.At); err != nil {
			return err
		}
	}
	if !v.Signed.IsZero() {
		e.uvarint(7)
		if err := e.time(v.Signed); err != nil {
			return err
		}
	}
	e.uvarint(0)
	return nil
}

var errShort = errors.New("ends early")

type decoder struct {
	b []byte
	// arena holds the bytes of the strings made (arenaString): one
	// allocation per arenaChunk instead of one per string.
	arena    strings.Builder
	last     [numSlots]string
	had      [numSlots]bool
	lastTime time.Time // the previous time (slotTime)
	hadTime  bool
	err      error
	// maxShipped is the highest sequence of the shipped section.
	maxShipped uint64
}

// arenaChunk is the size of the decoder's arena's blocks.
const arenaChunk = 64 << 10

// reserve makes room for n more bytes in the arena's current block, so
// that they are contiguous.
func (d *decoder) reserve(n int) {
	if d.arena.Cap()-d.arena.Len() < n {
		// A fresh block; the strings made from the last one keep it.
		d.arena = strings.Builder{}
		d.arena.Grow(max(n, arenaChunk))
	}
}

// arenaString returns a string of p's bytes, carved from the arena. The
// arena only grows: bytes once written never change, so the strings
// made from it are as immutable as any other (strings.Builder's String
// gives them without a copy).
func (d *decoder) arenaString(p []byte) string {
	d.reserve(len(p))
	off := d.arena.Len()
	d.arena.Write(p)
	return d.arena.String()[off:]
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad number: %w", errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items that take at least min bytes each.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail("count %d beyond the bytes left: %w", n, errShort)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d beyond the bytes left: %w", n, errShort)
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str(slot int) string {
	kind := d.bytes(1)
	if d.err != nil {
		return ""
	}
	var s string
	switch kind[0] {
	case strBytes:
		b := d.bytes(d.uvarint())
		if d.err != nil {
			return ""
		}
		s = d.arenaString(b)
	case strHash:
		raw := d.bytes(sha256.Size)
		if d.err != nil {
			return ""
		}
		var h [2 * sha256.Size]byte
		hex.Encode(h[:], raw)
		s = d.arenaString(h[:])
	case strRepeat:
		if !d.had[slot] {
			d.fail("repeated string with nothing before it")
			return ""
		}
		return d.last[slot]
	default:
		d.fail("unknown string kind %d", kind[0])
		return ""
	}
	d.had[slot], d.last[slot] = true, s
	return s
}

// time reads a time (a str of MarshalBinary's bytes) without making a
// string of it.
func (d *decoder) time() time.Time {
	kind := d.bytes(1)
	if d.err != nil {
		return time.Time{}
	}
	var t time.Time
	switch kind[0] {
	case strRepeat:
		if !d.hadTime {
			d.fail("repeated time with nothing before it")
		}
		return d.lastTime
	case strBytes:
		b := d.bytes(d.uvarint())
		if d.err != nil {
			return time.Time{}
		}
		if err := t.UnmarshalBinary(b); err != nil {
			d.fail("time: %v", err)
			return time.Time{}
		}
	default:
		d.fail("time of string kind %d", kind[0])
		return time.Time{}
	}
	if t.IsZero() {
		d.fail("zero time written")
		return time.Time{}
	}
	d.hadTime, d.lastTime = true, t
	return t
}

// key reads a map key written after prev (the first key when first); keys
// must increase.
func (d *decoder) key(prev string, first bool) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(prev)) {
		d.fail("key shares %d bytes with a key of %d", n, len(prev))
		return ""
	}
	if k := d.bytes(1); d.err == nil && k[0] != strBytes {
		d.fail("key of kind %d", k[0])
	}
	rest := d.bytes(d.uvarint())
	if d.err != nil {
		return ""
	}
	d.reserve(int(n) + len(rest))
	off := d.arena.Len()
	d.arena.WriteString(prev[:n])
	d.arena.Write(rest)
	k := d.arena.String()[off:]
	if !first && k <= prev {
		d.fail("key %q after %q: not in increasing order", k, prev)
		return ""
	}
	return k
}

// field reads a record's next field number; 0 ends the record. Fields must
// increase.
func (d *decoder) field(prev uint64, max uint64) uint64 {
	f := d.uvarint()
	if d.err == nil && f != 0 && (f <= prev || f > max) {
		d.fail("field %d after field %d (known: 1 to %d)", f, prev, max)
		return 0
	}
	return f
}

var errChecksum = errors.New("checksum mismatch (the file was damaged or cut short)")

// decode parses a v2 file (magic line included). A file laid out as Save
// writes it is read on two cores (decodeSplit): the checksum and the
// verdicts on one, the shipped set and the upstreams on the other. Any
// other file, and any file that fails there, is read by decodeSerial,
// whose result and error are the ones returned: the split is only faster.
func decode(data []byte) (*State, error) {
	if !bytes.HasPrefix(data, magicV2) {
		return nil, errors.New("no v2 version line")
	}
	if len(data) < len(magicV2)+sha256.Size {
		return nil, fmt.Errorf("checksum: %w", errShort)
	}
	if s, ok := decodeSplit(data); ok {
		return s, nil
	}
	return decodeSerial(data)
}

// checksumOK reports whether a v2 file (at least magic and sum long) ends
// with the SHA-256 of what comes before.
func checksumOK(data []byte) bool {
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	got := sha256.Sum256(body)
	return bytes.Equal(got[:], sum)
}

// decodeSplit reads a file whose sections come in Save's order (sequence,
// bundle, digest, shipped, upstreams, verified, end) on three goroutines:
// a skim (which builds nothing) finds where each section starts, then the
// checksum and the verdicts, the shipped set, and the header and the
// upstreams are read at once, each by a decoder of its own section's
// bytes. The sections' strings refer to no string of another section
// (each field has its own slot), so each decoder reads its section as
// decodeSerial does. ok is false for any other layout or any error:
// decodeSerial then reads the file again.
func decodeSplit(data []byte) (*State, bool) {
	body := data[len(magicV2) : len(data)-sha256.Size]
	sk := &decoder{b: body}
	at := func() int { return len(body) - len(sk.b) }
	headerEnd := 0
	tag := sk.uvarint()
	for _, t := range []uint64{tagSequence, tagBundle, tagDigest} {
		if tag != t {
			continue
		}
		if t == tagSequence {
			sk.uvarint()
		} else {
			sk.skipStr()
		}
		headerEnd = at()
		tag = sk.uvarint()
	}
	if tag != tagShipped || sk.err != nil {
		return nil, false
	}
	shipped := at()
	sk.skipMap(func() { sk.uvarint() })
	shippedEnd := at()
	if sk.uvarint() != tagUpstreams || sk.err != nil {
		return nil, false
	}
	upstreams := at()
	sk.skipMap(sk.skipRecord)
	upstreamsEnd := at()
	if sk.uvarint() != tagVerified || sk.err != nil {
		return nil, false
	}
	verified := at()

	var vs map[string]Verified
	vok := make(chan bool, 1)
	go func() {
		if !checksumOK(data) {
			vok <- false
			return
		}
		d := &decoder{b: body[verified:]}
		vs = decodeMap(d, d.verified)
		vok <- d.err == nil && d.uvarint() == tagEnd && d.err == nil && len(d.b) == 0
	}()
	var ss map[string]uint64
	var maxShipped uint64
	sok := make(chan bool, 1)
	go func() {
		d := &decoder{b: body[shipped:shippedEnd]}
		ss = d.shipped()
		maxShipped = d.maxShipped
		sok <- d.err == nil && len(d.b) == 0
	}()
	s := New()
	d := &decoder{b: body[:headerEnd]}
	for d.err == nil && len(d.b) > 0 {
		if tag := d.uvarint(); !d.header(s, tag) {
			d.fail("section %d", tag) // not reached: the skim saw the layout
		}
	}
	headerOK := d.err == nil
	d = &decoder{b: body[upstreams:upstreamsEnd]}
	s.Upstreams = decodeMap(d, d.upstream)
	upstreamsOK := d.err == nil && len(d.b) == 0
	if shippedOK, verifiedOK := <-sok, <-vok; !headerOK || !upstreamsOK || !shippedOK || !verifiedOK || maxShipped > s.Sequence {
		return nil, false
	}
	s.Shipped, s.Verified = ss, vs
	return s, true
}

// header reads the value of a header section (sequence, bundle, digest)
// into s; false for any other tag.
func (d *decoder) header(s *State, tag uint64) bool {
	switch tag {
	case tagSequence:
		s.Sequence = d.uvarint()
	case tagBundle:
		s.Bundle = d.str(slotBundle)
	case tagDigest:
		s.Digest = d.str(slotDigest)
	default:
		return false
	}
	return true
}

// skipStr moves past a str without making it.
func (d *decoder) skipStr() {
	kind := d.bytes(1)
	if d.err != nil {
		return
	}
	switch kind[0] {
	case strBytes:
		d.bytes(d.uvarint())
	case strHash:
		d.bytes(sha256.Size)
	case strRepeat:
	default:
		d.fail("unknown string kind %d", kind[0])
	}
}

// skipMap moves past a section's entries (decodeMap's layout), each value
// skipped by val.
func (d *decoder) skipMap(val func()) {
	n := d.count(4)
	for range n {
		d.uvarint() // bytes shared with the previous key
		d.skipStr()
		val()
		if d.err != nil {
			return
		}
	}
}

// skipRecord moves past an upstream record: fields of a str (1, 3, 4) or
// a uvarint (2), up to the 0 that ends it.
func (d *decoder) skipRecord() {
	for d.err == nil {
		switch f := d.uvarint(); f {
		case 0:
			return
		case 2:
			d.uvarint()
		case 1, 3, 4:
			d.skipStr()
		default:
			d.fail("upstream field %d", f)
		}
	}
}

// decodeSerial parses a v2 file (magic line included) section by section.
func decodeSerial(data []byte) (*State, error) {
	if !checksumOK(data) {
		return nil, errChecksum
	}
	body := data[:len(data)-sha256.Size]
	d := &decoder{b: body[len(magicV2):]}
	s := New()
	seen := map[uint64]bool{}
	for d.err == nil {
		tag := d.uvarint()
		if d.err != nil {
			break
		}
		if tag == tagEnd {
			if len(d.b) != 0 {
				d.fail("%d bytes after the end", len(d.b))
			}
			break
		}
		if seen[tag] {
			d.fail("section %d twice", tag)
			break
		}
		seen[tag] = true
		switch tag {
		case tagShipped:
			s.Shipped = d.shipped()
		case tagUpstreams:
			s.Upstreams = decodeMap(d, d.upstream)
		case tagVerified:
			s.Verified = decodeMap(d, d.verified)
		default:
			if !d.header(s, tag) {
				d.fail("unknown section %d", tag)
			}
		}
	}
	if d.err == nil && d.maxShipped > s.Sequence {
		d.fail("a blob shipped in sequence %d, but the last is %d", d.maxShipped, s.Sequence)
	}
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

// decodeMap reads a section written by encodeMap: the count (bounded by
// the bytes left), then each key and its value read by val.
func decodeMap[V any](d *decoder, val func() V) map[string]V {
	n := d.count(4)
	m := make(map[string]V, min(n, maxPrealloc))
	prev := ""
	for i := range n {
		k := d.key(prev, i == 0)
		m[k] = val()
		prev = k
	}
	return m
}

// shipped reads the shipped section (decodeMap's layout), checking each
// entry as Parse checks a FormatV1 state's, while it is fresh in the cache
// instead of in a second pass over 40,000 entries: the key is a SHA-256,
// the sequence is not 0 (nor, checked by decode at the end, beyond the
// file's sequence).
func (d *decoder) shipped() map[string]uint64 {
	n := d.count(4)
	m := make(map[string]uint64, min(n, maxPrealloc))
	prev := ""
	for i := range n {
		k := d.key(prev, i == 0)
		seq := d.uvarint()
		if d.err != nil {
			break
		}
		if !validSHA256(k) || seq == 0 {
			d.fail("shipped blob %q in sequence %d", k, seq)
			break
		}
		d.maxShipped = max(d.maxShipped, seq)
		m[k] = seq
		prev = k
	}
	return m
}

func (d *decoder) upstream() Upstream {
	var u Upstream
	for f := d.field(0, 4); f != 0 && d.err == nil; f = d.field(f, 4) {
		switch f {
		case 1:
			u.SHA256 = d.str(slotSHA)
		case 2:
			n := d.uvarint()
			if n > math.MaxInt64 {
				d.fail("size %d", n)
			}
			u.Size = int64(n)
		case 3:
			u.ETag = d.str(slotETag)
		case 4:
			u.LastModified = d.str(slotLastModified)
		}
	}
	return u
}

func (d *decoder) verified() Verified {
	var v Verified
	for f := d.field(0, 7); f != 0 && d.err == nil; f = d.field(f, 7) {
		switch f {
		case 1:
			v.File = d.str(slotFile)
		case 2:
			v.Sigs = d.str(slotSigs)
		case 3:
			v.Trust = d.str(slotTrust)
		case 4:
			n := d.count(1)
			if n == 0 && d.err == nil {
				d.fail("empty key list written")
			}
			v.Keys = make([]string, 0, min(n, 16))
			for range n {
				v.Keys = append(v.Keys, d.str(slotKeyName))
			}
		case 5:
			n := d.count(2)
			if n == 0 && d.err == nil {
				d.fail("empty scheme list written")
			}
			v.Schemes = make(map[string]string, min(n, 16))
			prev := ""
			for i := range n {
				name := d.str(slotSchemeName)
				if i > 0 && name <= prev {
					d.fail("scheme of %q after %q: not in increasing order", name, prev)
				}
				v.Schemes[name] = d.str(slotScheme)
				prev = name
			}
		case 6:
			v.At = d.time()
		case 7:
			v.Signed = d.time()
		}
	}
	return v
}
