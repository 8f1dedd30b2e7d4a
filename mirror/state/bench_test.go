package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// benchState is shaped like the state after `mirror sync` of n files with one
// minisign signature each (scripts/bench/sync.sh): 2n upstreams, 2n shipped
// blobs, n verdicts.
func benchState(n int) *State {
	h := func(s string) string { x := sha256.Sum256([]byte(s)); return hex.EncodeToString(x[:]) }
	s := New()
	s.Sequence, s.Bundle, s.Digest = 1, "mirror-000001.tar.zst", h("digest")
	trust := h("trust")
	at := time.Date(2026, 11, 25, 11, 56, 55, 881650462, time.UTC)
	for i := range n {
		f := fmt.Sprintf("p/f%06d.tgz", i)
		u := "http://127.0.0.1:38417/small/" + f
		fs, ss := h(f), h(f+".minisig")
		s.Shipped[fs], s.Shipped[ss] = 1, 1
		s.Upstreams[u] = Upstream{SHA256: fs, Size: 8192}
		s.Upstreams[u+".minisig"] = Upstream{SHA256: ss, Size: 306}
		s.Verified["small:"+f] = Verified{File: fs, Sigs: h(ss), Trust: trust, Keys: []string{"rel"},
			Schemes: map[string]string{fmt.Sprintf("f%06d.tgz.minisig", i): "minisign"}, At: at}
	}
	return s
}

// BenchmarkParse: reading the state of a 20,000-file sync, v1 (JSON) and v2.
func BenchmarkParse(b *testing.B) {
	s := benchState(20000)
	s.Format = FormatV1
	v1, err := json.Marshal(s)
	if err != nil {
		b.Fatal(err)
	}
	v2, err := s.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for name, data := range map[string][]byte{"v1": v1, "v2": v2} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMarshal(b *testing.B) {
	s := benchState(20000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
