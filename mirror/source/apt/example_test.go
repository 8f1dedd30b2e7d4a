package apt_test

import (
	"fmt"

	"github.com/mirror-tool/mirror/mirror/source/apt"
)

func ExampleCompareVersions() {
	fmt.Println(apt.CompareVersions("1.0~rc1", "1.0"))
	fmt.Println(apt.CompareVersions("1:0.9", "2.0"))
	fmt.Println(apt.CompareVersions("2.30-1+deb12u1", "2.30-1"))
	// Output:
	// -1
	// 1
	// 1
}

func ExampleUniverse_Select() {
	index := []byte(`Package: hello
Version: 1.0
Architecture: amd64
Depends: libgreet1 (>= 1.0), default-mta | mail-transport-agent
Filename: pool/main/h/hello/hello_1.0_amd64.deb
Size: 864
SHA256: ec450f52eb9271e2482092fce7b2f03997dd675fdcc821a3b10f025ca7f23184

Package: libgreet1
Version: 1.1
Architecture: amd64
Filename: pool/main/l/libgreet1/libgreet1_1.1_amd64.deb
Size: 832
SHA256: 6abd14666c3ce195b8efbebc3f9de96655d1e6b0203efa621df9cd9daf9faf70

Package: tinymta
Version: 1.0
Architecture: amd64
Provides: mail-transport-agent
Filename: pool/main/t/tinymta/tinymta_1.0_amd64.deb
Size: 824
SHA256: 0ea290ea546cf350c09c7f18c7082aa3b6175e00a6288af9c3da02f1194cad85
`)
	pkgs, err := apt.ParsePackages(index)
	if err != nil {
		panic(err)
	}
	chosen, unresolved := apt.NewUniverse(pkgs).Select([]string{"hello"}, true)
	for _, p := range chosen {
		fmt.Println(p.Name, p.Version, p.Filename)
	}
	fmt.Println(len(unresolved), "unresolved")
	// Output:
	// hello 1.0 pool/main/h/hello/hello_1.0_amd64.deb
	// libgreet1 1.1 pool/main/l/libgreet1/libgreet1_1.1_amd64.deb
	// tinymta 1.0 pool/main/t/tinymta/tinymta_1.0_amd64.deb
	// 0 unresolved
}
