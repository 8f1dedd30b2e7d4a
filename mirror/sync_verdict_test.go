package mirror

import (
	"reflect"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/state"
)

// sameVerdict decides whether a no-op run rewrites the state file: it must
// see every field that reflect.DeepEqual (its predecessor) saw.
func TestSameVerdict(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	base := func() state.Verified {
		return state.Verified{File: "f", Sigs: "s", Trust: "t", Keys: []string{"a", "b"},
			Schemes: map[string]string{"x.minisig": "minisign"}, At: at}
	}
	if a, b := base(), base(); !sameVerdict(a, b) || !reflect.DeepEqual(a, b) {
		t.Fatal("equal verdicts differ")
	}
	changes := map[string]func(v *state.Verified){
		"file":         func(v *state.Verified) { v.File = "g" },
		"sigs":         func(v *state.Verified) { v.Sigs = "z" },
		"trust":        func(v *state.Verified) { v.Trust = "u" },
		"keys":         func(v *state.Verified) { v.Keys = []string{"a"} },
		"key order":    func(v *state.Verified) { v.Keys = []string{"b", "a"} },
		"scheme":       func(v *state.Verified) { v.Schemes = map[string]string{"x.minisig": "ssh"} },
		"scheme name":  func(v *state.Verified) { v.Schemes = map[string]string{"y.minisig": "minisign"} },
		"time":         func(v *state.Verified) { v.At = at.Add(time.Nanosecond) },
		"time zone":    func(v *state.Verified) { v.At = at.In(time.FixedZone("X", 3600)) },
		"extra scheme": func(v *state.Verified) { v.Schemes["z.sig"] = "openpgp" },
	}
	for name, change := range changes {
		a, b := base(), base()
		change(&b)
		if sameVerdict(a, b) || sameVerdict(b, a) {
			t.Errorf("%s: a changed verdict counts as the same (the state would not be saved)", name)
		}
		if reflect.DeepEqual(a, b) {
			t.Errorf("%s: the change is not a change", name)
		}
	}
}
