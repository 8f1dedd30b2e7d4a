package state

import (
	"reflect"
	"strings"
	"testing"
)

// TestDecodeSplitTaken: a state as Save writes it (here the shape of a
// 2,000-file sync, and an empty one) is read by decodeSplit, which gives
// decodeSerial's state.
func TestDecodeSplitTaken(t *testing.T) {
	for name, s := range map[string]*State{"2,000 files": benchState(2000), "empty": New()} {
		data, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeSplit(data)
		if !ok {
			t.Fatalf("%s: decodeSplit refused Save's layout", name)
		}
		want, err := decodeSerial(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(got, s) {
			t.Fatalf("%s: decodeSplit and decodeSerial differ", name)
		}
	}
}

// FuzzDecodeSplit: whenever decodeSplit accepts a file, decodeSerial
// accepts it too and reads the same state (decode returns decodeSplit's
// state when it has one, decodeSerial's result otherwise).
func FuzzDecodeSplit(f *testing.F) {
	_, v2 := fixtureStates(f)
	big, err := benchState(3).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range [][]byte{v2, mustMarshalF(f), big} {
		f.Add(bodyOf(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		data := withSum(body)
		got, ok := decodeSplit(data)
		want, err := decodeSerial(data)
		if !ok {
			if got != nil {
				t.Fatal("decodeSplit returned a state with ok false")
			}
			return
		}
		if err != nil {
			t.Fatalf("decodeSplit accepted what decodeSerial refuses: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeSplit:\n%+v\ndecodeSerial:\n%+v", got, want)
		}
	})
}

// TestValidSHA256: 64 lowercase hex digits and nothing else.
func TestValidSHA256(t *testing.T) {
	good := sum('a')
	if !validSHA256(good) || !validSHA256(strings.Repeat("0123456789abcdef", 4)) {
		t.Fatal("a SHA-256 refused")
	}
	for _, bad := range []string{"", good[:63], good + "0", strings.ToUpper(good), good[:63] + "g", "/" + good[1:], good[:10] + "\x00" + good[11:], good[:63] + "\xe9"} {
		if validSHA256(bad) {
			t.Errorf("validSHA256(%q) = true", bad)
		}
	}
}
