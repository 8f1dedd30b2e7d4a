package apt

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
)

// syntheticPackages is a Packages index shaped like Debian's (field set and
// sizes), n paragraphs.
func syntheticPackages(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "Package: pkg%06d\nVersion: 1.%d-%d+deb12u1\nInstalled-Size: %d\nMaintainer: Debian Example Maintainers <pkg%06d@lists.example.org>\nArchitecture: amd64\n", i, i%97, i%5, 100+i%9000, i)
		fmt.Fprintf(&b, "Depends: libc6 (>= 2.34), pkg%06d (= 1.%d-%d+deb12u1), libfoo%d | libbar%d, zlib1g (>= 1:1.2.0)\n", (i+1)%n, (i+1)%97, (i+1)%5, i%13, i%17)
		fmt.Fprintf(&b, "Pre-Depends: dpkg (>= 1.15.6~)\nProvides: virtual-%d\n", i%50)
		fmt.Fprintf(&b, "Description: example package number %d with a longer synopsis line\n", i)
		fmt.Fprintf(&b, "Homepage: https://example.org/pkg%06d\nDescription-md5: %032x\nTag: devel::library, implemented-in::c, role::shared-lib\nSection: libs\nPriority: optional\n", i, i)
		fmt.Fprintf(&b, "Filename: pool/main/p/pkg%06d/pkg%06d_1.%d-%d+deb12u1_amd64.deb\nSize: %d\nMD5sum: %032x\nSHA256: %064x\n\n", i, i, i%97, i%5, 10000+i, i, i)
	}
	return []byte(b.String())
}

// BenchmarkParsePackages parses a Debian-sized index (60,000 paragraphs,
// about the size of bookworm main amd64) and reports MB/s and allocations.
func BenchmarkParsePackages(b *testing.B) {
	data := syntheticPackages(60000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePackages(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSelectClosure: the dependency closure of 1,000 names in it.
func BenchmarkSelectClosure(b *testing.B) {
	pkgs, err := ParsePackages(syntheticPackages(60000))
	if err != nil {
		b.Fatal(err)
	}
	u := NewUniverse(pkgs)
	var names []string
	for i := range 1000 {
		names = append(names, fmt.Sprintf("pkg%06d", i*37))
	}
	b.ResetTimer()
	for b.Loop() {
		u.Select(names, true)
	}
}

// withRandomSums replaces the hex of the MD5sum, SHA256 and Description-md5
// fields of an index by pseudo-random hex, as real sums are: compressors
// find little in them, which syntheticPackages' counters do not show.
func withRandomSums(index []byte) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	lines := strings.Split(string(index), "\n")
	for i, l := range lines {
		for _, f := range []string{"MD5sum: ", "SHA256: ", "Description-md5: "} {
			if strings.HasPrefix(l, f) {
				raw := make([]byte, (len(l)-len(f))/2)
				for k := range raw {
					raw[k] = byte(r.Uint32())
				}
				lines[i] = f + hex.EncodeToString(raw)
			}
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// BenchmarkDecompressIndex decompresses the Debian-sized index (with random
// sums) as Index would find it upstream, compressed by the real gzip -9 and
// xz -6 (what Debian's archive tools use): the cost every sync pays for its
// index, changed or not. compressed-B is the variant's size.
func BenchmarkDecompressIndex(b *testing.B) {
	plain := withRandomSums(syntheticPackages(60000))
	for _, v := range []struct{ name, tool, level string }{{"Packages.gz", "gzip", "-9"}, {"Packages.xz", "xz", "-6"}} {
		cmd := exec.Command(v.tool, v.level, "-c")
		cmd.Stdin = bytes.NewReader(plain)
		packed, err := cmd.Output()
		if err != nil {
			b.Fatalf("%s: %v", v.tool, err)
		}
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			for b.Loop() {
				out, err := decompress(v.name, packed)
				if err != nil || len(out) != len(plain) {
					b.Fatalf("%d bytes, %v", len(out), err)
				}
			}
			b.ReportMetric(float64(len(packed)), "compressed-B")
		})
	}
}
