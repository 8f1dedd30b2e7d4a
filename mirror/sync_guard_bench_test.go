package mirror

import (
	"fmt"
	"testing"

	"github.com/mirror-tool/mirror/mirror/source/files"
)

// BenchmarkServable: the publish-path checks of a 20,000-package source
// (one signature each), as prepare makes them on a no-op.
func BenchmarkServable(b *testing.B) {
	pkgs := make([]files.Package, 20000)
	for i := range pkgs {
		n := fmt.Sprintf("p/f%06d.tgz", i)
		pkgs[i] = files.Package{Name: n, Path: "small/" + n, Signatures: []files.Signature{{Path: "small/" + n + ".minisig"}}}
	}
	b.ReportAllocs()
	for b.Loop() {
		in := append([]files.Package(nil), pkgs...)
		if ok, _, clash := servable(in, nil); len(ok) != len(pkgs) || clash {
			b.Fatal(len(ok), clash)
		}
	}
}
