package verify_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/mirror-tool/mirror/verify"
)

func ExamplePolicy_Check() {
	p, _, err := verify.LoadTrustFile("../fixtures/verify/trust.toml")
	if err != nil {
		fmt.Println(err)
		return
	}
	sig, _ := os.ReadFile("../fixtures/verify/minisign/mini1.hello.txt.minisig")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, pkg := range []string{"tools:hello.txt", "debian:hello", "tools:critical/hello.txt"} {
		f, _ := os.Open("../fixtures/verify/hello.txt")
		v, err := p.Check(context.Background(), pkg, f, []verify.Signature{{Name: "hello.txt.minisig", Data: sig}}, now)
		f.Close()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(pkg, v.Accepted, v.Err)
	}
	// Output:
	// tools:hello.txt true <nil>
	// debian:hello false key "mini1" is not allowed to sign debian:hello (signature hello.txt.minisig); add a matching glob to its allow list if it should
	// tools:critical/hello.txt false tools:critical/hello.txt needs valid signatures by 2 distinct trusted keys allowed for it, got 1 (mini1); add signatures by other allowed keys or lower the rule's threshold
}
