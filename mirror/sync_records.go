package mirror

import (
	"maps"
	"slices"
)

// records is what a run records under string keys (upstream URL → what it
// served, package → its accepted verdict), kept as its difference from
// what the state recorded: the keys recorded with the state's own value,
// and a map of the others. A no-op run of 20,000 packages records 60,000
// entries that are all the state's; building two new maps of them, and
// then comparing them with the state's, was a good part of its time.
//
// The last value put under a key is the one recorded, as with a map. The
// caller serializes access.
type records[V any] struct {
	base map[string]V      // the state's; read only
	same func(a, b V) bool // whether two values are the same record
	kept []string          // keys put with base's value (a key may repeat)
	diff map[string]V      // keys put with another value, or not in base
	// keptSet holds kept once has was asked (rarely: refused packages).
	keptSet map[string]struct{}
}

func newRecords[V any](base map[string]V, same func(a, b V) bool) *records[V] {
	return &records[V]{base: base, same: same, diff: map[string]V{}}
}

// grow makes room for n more keys: in kept for those the base has (a run
// with nothing new), and in a still empty diff for the others (a first
// run, where the base is empty).
func (s *records[V]) grow(n int) {
	s.kept = slices.Grow(s.kept, min(n, len(s.base)))
	if len(s.diff) == 0 && n > len(s.base) {
		s.diff = make(map[string]V, n-len(s.base))
	}
}

func (s *records[V]) put(k string, v V) {
	if b, ok := s.base[k]; ok && s.same(b, v) {
		delete(s.diff, k)
		s.kept = append(s.kept, k)
		if s.keptSet != nil {
			s.keptSet[k] = struct{}{}
		}
		return
	}
	s.diff[k] = v
}

// carry puts base's value of k, when base has k and k was not put yet.
func (s *records[V]) carry(k string) {
	if v, ok := s.base[k]; ok && !s.has(k) {
		s.put(k, v)
	}
}

// has reports whether k was put.
func (s *records[V]) has(k string) bool {
	if _, ok := s.diff[k]; ok {
		return true
	}
	if s.keptSet == nil {
		s.keptSet = make(map[string]struct{}, len(s.kept))
		for _, k := range s.kept {
			s.keptSet[k] = struct{}{}
		}
	}
	_, ok := s.keptSet[k]
	return ok
}

// all reports whether every key of base was put with base's value and no
// other key was put: then the record is base exactly.
func (s *records[V]) all() bool {
	if len(s.diff) != 0 || len(s.kept) != len(s.base) {
		return false
	}
	slices.Sort(s.kept)
	for i := 1; i < len(s.kept); i++ {
		if s.kept[i] == s.kept[i-1] {
			return false
		}
	}
	return true
}

// missing calls f with every key of base that was not put, and its value.
// f may put.
func (s *records[V]) missing(f func(k string, v V)) {
	if s.all() {
		return
	}
	for k, v := range s.base {
		if !s.has(k) {
			f(k, v)
		}
	}
}

// result returns what was recorded as a map, and whether it is the state's
// (then the map is base itself). Nothing may be put after it.
func (s *records[V]) result() (m map[string]V, unchanged bool) {
	// A key in diff was put last with another value than base's (a put
	// with base's value takes it out), so any diff is a change; without
	// one, the keys of kept are base's, and the record is base exactly
	// when they are all of them.
	if s.all() {
		if s.base == nil {
			return map[string]V{}, true
		}
		return s.base, true
	}
	m = make(map[string]V, len(s.kept)+len(s.diff))
	for _, k := range s.kept {
		m[k] = s.base[k]
	}
	maps.Copy(m, s.diff) // a key in both was put last with diff's value
	return m, len(s.diff) == 0 && len(m) == len(s.base)
}
