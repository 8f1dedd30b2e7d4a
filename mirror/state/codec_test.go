package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// filled returns a value of type t with every field set to something other
// than its zero value (distinct per seed), by reflection, so that a field
// added to Upstream or Verified is covered without editing this test.
func filled(t *testing.T, typ reflect.Type, seed int) reflect.Value {
	v := reflect.New(typ).Elem()
	for i := range typ.NumField() {
		f := v.Field(i)
		name := typ.Field(i).Name
		switch {
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(time.Date(2026, 1, 2+i, 3, 4, 5, 6+seed, time.UTC)))
		case f.Kind() == reflect.String:
			f.SetString(fmt.Sprintf("%s-%d", strings.ToLower(name), seed))
		case f.Kind() == reflect.Int64:
			f.SetInt(int64(1000*i + seed + 1))
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
			f.Set(reflect.ValueOf([]string{fmt.Sprintf("b-%d", seed), "a"}))
		case f.Kind() == reflect.Map && f.Type().Key().Kind() == reflect.String && f.Type().Elem().Kind() == reflect.String:
			f.Set(reflect.ValueOf(map[string]string{fmt.Sprintf("x%d.minisig", seed): "minisign", "y.sig": "openpgp"}))
		default:
			t.Fatalf("%s.%s: the test does not know how to fill a %s; teach filled() and the codec", typ.Name(), name, f.Type())
		}
	}
	return v
}

// TestCodecCoversEveryField fails when a field of Upstream or Verified is
// not written or not read back by the v2 codec.
func TestCodecCoversEveryField(t *testing.T) {
	s := New()
	s.Sequence = 7
	s.Bundle = "mirror-000007.tar.zst"
	s.Digest = sum('d')
	s.Record(3, []string{sum('a'), sum('b')})
	for i := range 3 {
		s.Upstreams[fmt.Sprintf("https://example.org/p/%d", i)] = filled(t, reflect.TypeOf(Upstream{}), i).Interface().(Upstream)
		s.Verified[fmt.Sprintf("src:p/%d", i)] = filled(t, reflect.TypeOf(Verified{}), i).Interface().(Verified)
	}
	// Hash-shaped values take the compact form; repeated ones the
	// back-reference.
	s.Upstreams["https://example.org/q"] = Upstream{SHA256: sum('e'), Size: 1}
	s.Verified["src:q"] = Verified{File: sum('e'), Sigs: sum('f'), Trust: "trust-2", Keys: []string{"a"}}
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
}

func TestParseV1File(t *testing.T) {
	data, err := os.ReadFile("testdata/v1-state.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	// The same file decoded by encoding/json, as v1 was read.
	var want State
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if want.Format != FormatV1 || s.Format != FormatV1 {
		t.Fatalf("formats: file %q, loaded %q", want.Format, s.Format)
	}
	if len(want.Verified) != 3 || len(want.Upstreams) != 6 || len(want.Shipped) != 6 {
		t.Fatalf("fixture has %d verdicts, %d upstreams, %d shipped", len(want.Verified), len(want.Upstreams), len(want.Shipped))
	}
	if !reflect.DeepEqual(s, &want) {
		t.Fatalf("v1 file:\n got %+v\nwant %+v", s, &want)
	}
	// Migrated on save: the next Load reads v2 and finds the same.
	dir := t.TempDir()
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte(Format+"\n")) {
		t.Fatalf("saved file starts with %q", raw[:20])
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !equalState(back, s) {
		t.Fatalf("v1 -> v2:\n got %+v\nwant %+v", back, s)
	}
	if len(raw) >= len(data) {
		t.Errorf("v2 file is %d bytes, v1 %d", len(raw), len(data))
	}
}

// equalState compares states with times compared by instant and offset
// (a JSON time comes back with a zone of its own).
func equalState(a, b *State) bool {
	ea, err1 := a.Marshal()
	eb, err2 := b.Marshal()
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

func TestParseRejects(t *testing.T) {
	good, err := func() ([]byte, error) {
		s := New()
		s.Record(1, []string{sum('a')})
		s.Upstreams["u"] = Upstream{SHA256: sum('a'), Size: 2}
		return s.Marshal()
	}()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(good); err != nil {
		t.Fatal(err)
	}
	// The hand-made bodies below are refused for their content only.
	if _, err := Parse(withSum([]byte{tagVerified, 1, 0, strBytes, 1, 'a', 4, 1, strBytes, 1, 'k', 0, tagEnd})); err != nil {
		t.Fatalf("hand-made body: %v", err)
	}
	resum := func(b []byte) []byte {
		body := b[:len(b)-sha256.Size]
		s := sha256.Sum256(body)
		return append(append([]byte{}, body...), s[:]...)
	}
	flip := append([]byte{}, good...)
	flip[len(Format)+3] ^= 1
	// Body with a section that is not known: tag 9 after the end tag's place.
	unknown := append([]byte{}, good[:len(good)-sha256.Size-1]...)
	unknown = append(unknown, 9, 0)
	for name, tc := range map[string]struct {
		data []byte
		want error
	}{
		"empty":               {nil, ErrCorrupt},
		"not json":            {[]byte("{"), ErrCorrupt},
		"v1 wrong format":     {[]byte(`{"format":"other","sequence":1}`), ErrFormat},
		"newer version":       {[]byte("mirror-sync-state/v3\n..."), ErrFormat},
		"truncated":           {good[:len(good)-5], ErrCorrupt},
		"checksum":            {flip, ErrCorrupt},
		"unknown section":     {resum(append(unknown, make([]byte, sha256.Size)...)), ErrCorrupt},
		"trailing bytes":      {resum(append(append(good[:len(good)-sha256.Size:len(good)-sha256.Size], 0), make([]byte, sha256.Size)...)), ErrCorrupt},
		"v1 future seq":       {[]byte(`{"format":"` + FormatV1 + `","sequence":1,"shipped":{"` + sum('a') + `":2}}`), ErrCorrupt},
		"v1 negative size":    {[]byte(`{"format":"` + FormatV1 + `","upstreams":{"u":{"size":-1}}}`), ErrCorrupt},
		"v2 empty keys":       {withSum([]byte{tagVerified, 1, 0, strBytes, 1, 'a', 4, 0, 0, tagEnd}), ErrCorrupt},
		"v2 empty schemes":    {withSum([]byte{tagVerified, 1, 0, strBytes, 1, 'a', 5, 0, 0, tagEnd}), ErrCorrupt},
		"v2 keys unordered":   {withSum([]byte{tagVerified, 2, 0, strBytes, 1, 'b', 0, 0, strBytes, 1, 'a', 0, tagEnd}), ErrCorrupt},
		"v2 fields unordered": {withSum([]byte{tagUpstreams, 1, 0, strBytes, 1, 'a', 2, 5, 1, strBytes, 1, 'x', 0, tagEnd}), ErrCorrupt},
		"v2 repeat first":     {withSum([]byte{tagBundle, strRepeat, tagEnd}), ErrCorrupt},
		"v2 only magic":       {[]byte(Format + "\n"), ErrCorrupt},
		"v2 zero shipped":     {mustMarshal(t, func(s *State) { s.Sequence = 1; s.Shipped[sum('a')] = 0 }), ErrCorrupt},
		"v2 future shipped":   {mustMarshal(t, func(s *State) { s.Shipped[sum('a')] = 1 }), ErrCorrupt},
		"v2 bad shipped":      {mustMarshal(t, func(s *State) { s.Sequence = 1; s.Shipped["zz"] = 1 }), ErrCorrupt},
	} {
		s, err := Parse(tc.data)
		if !errors.Is(err, tc.want) || s != nil {
			t.Errorf("%s: Parse = %v, %v; want %v", name, s, err, tc.want)
		}
	}
}

// withSum makes a v2 file of a body.
func withSum(body []byte) []byte {
	data := append([]byte(Format+"\n"), body...)
	s := sha256.Sum256(data)
	return append(data, s[:]...)
}

func mustMarshal(t *testing.T, edit func(*State)) []byte {
	s := New()
	edit(s)
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadRefusesOversize(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxStateSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if s, err := Load(dir); err == nil || s != nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load of an oversized state = %v, %v", s, err)
	}
}

// fixtureStates returns testdata/v1-state.json and the same state as Save
// writes it (v2): the seeds of the fuzz targets.
func fixtureStates(f *testing.F) (v1, v2 []byte) {
	f.Helper()
	v1, err := os.ReadFile("testdata/v1-state.json")
	if err != nil {
		f.Fatal(err)
	}
	s, err := Parse(v1)
	if err != nil {
		f.Fatal(err)
	}
	if v2, err = s.Marshal(); err != nil {
		f.Fatal(err)
	}
	return v1, v2
}

// bodyOf is a v2 file without its version line and trailing sum.
func bodyOf(b []byte) []byte { return b[len(Format)+1 : len(b)-sha256.Size] }

func FuzzParseState(f *testing.F) {
	v1, v2 := fixtureStates(f)
	for _, b := range [][]byte{v1, v2, mustMarshalF(f), []byte(Format + "\n")} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if s != nil {
				t.Fatalf("state returned with error %v", err)
			}
			return
		}
		b1, err := s.Marshal()
		if err != nil {
			t.Fatalf("accepted state does not marshal: %v", err)
		}
		s2, err := Parse(b1)
		if err != nil {
			t.Fatalf("own output refused: %v", err)
		}
		if bytes.HasPrefix(data, []byte(Format+"\n")) && !reflect.DeepEqual(s, s2) {
			t.Fatalf("v2 round trip:\n got %+v\nwant %+v", s2, s)
		}
		b2, err := s2.Marshal()
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("second marshal differs (%v)", err)
		}
	})
}

func mustMarshalF(f *testing.F) []byte {
	s := New()
	s.Record(2, []string{sum('1'), sum('2')})
	s.Bundle, s.Digest = "b", "not a hash"
	s.Upstreams["https://a/x"] = Upstream{SHA256: sum('1'), Size: 5, ETag: `"e"`, LastModified: "Mon, 02 Jan 2006 15:04:05 GMT"}
	s.Upstreams["https://a/x.sig"] = Upstream{SHA256: sum('2'), Size: 5, ETag: `"e"`}
	s.Verified["s:x"] = Verified{File: sum('1'), Sigs: sum('3'), Trust: sum('4'), Keys: []string{"k"},
		Schemes: map[string]string{"x.sig": "minisign"}, At: time.Unix(5, 6).UTC(), Signed: time.Unix(4, 0).In(time.FixedZone("", 3600))}
	s.Verified["s:y"] = Verified{File: sum('2'), Sigs: sum('3'), Trust: sum('4'), Keys: []string{"k", "l"}, At: time.Unix(5, 6).UTC()}
	b, err := s.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzDecodeStateBody reaches the v2 decoder behind the checksum: the fuzzed
// bytes are a body, given the version line and a correct sum.
func FuzzDecodeStateBody(f *testing.F) {
	_, v2 := fixtureStates(f)
	for _, b := range [][]byte{v2, mustMarshalF(f)} {
		f.Add(bodyOf(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := Parse(withSum(body))
		if err != nil {
			if s != nil {
				t.Fatalf("state returned with error %v", err)
			}
			return
		}
		b1, err := s.Marshal()
		if err != nil {
			t.Fatalf("accepted state does not marshal: %v", err)
		}
		s2, err := Parse(b1)
		if err != nil {
			t.Fatalf("own output refused: %v", err)
		}
		// The state read back must write the same bytes. (Not
		// reflect.DeepEqual: a time with an offset that is no whole hour
		// comes back with a new *time.Location each time it is read, an
		// equal zone behind another pointer; testdata has such a body.)
		b2, err := s2.Marshal()
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("round trip (%v):\n got %+v\nwant %+v", err, s2, s)
		}
	})
}

// TestParseHugeCountFailsCheaply: a count the bytes left would allow (a
// quarter of them) but that the entries do not fill is refused, without the
// reader making room for all of them first.
func TestParseHugeCountFailsCheaply(t *testing.T) {
	body := []byte{tagShipped}
	body = binary.AppendUvarint(body, 1<<22)
	body = append(body, make([]byte, 1<<24)...) // zeros: no valid key
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := Parse(withSum(body))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) || s != nil {
		t.Fatalf("Parse = %v, %v; want ErrCorrupt", s, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("refusing a 4M-entry count allocated %d MiB", grew>>20)
	}
}

// TestParseShippedBeforeSequence: the shipped entries are checked against
// the file's sequence wherever the sequence section stands (Save writes it
// first; a file with the sections the other way round is read the same).
func TestParseShippedBeforeSequence(t *testing.T) {
	shipped := func(seq byte) []byte {
		b := []byte{tagShipped, 1, 0, strBytes, 64}
		b = append(b, sum('a')...)
		return append(b, seq)
	}
	s, err := Parse(withSum(append(shipped(2), tagSequence, 2, tagEnd)))
	if err != nil || s.Sequence != 2 || s.Shipped[sum('a')] != 2 {
		t.Fatalf("shipped before the sequence: %+v, %v", s, err)
	}
	if s, err := Parse(withSum(append(shipped(3), tagSequence, 2, tagEnd))); !errors.Is(err, ErrCorrupt) || s != nil {
		t.Fatalf("a blob shipped after the last sequence: %+v, %v; want ErrCorrupt", s, err)
	}
}
