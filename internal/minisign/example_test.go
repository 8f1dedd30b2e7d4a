package minisign_test

import (
	"bytes"
	"fmt"
	"os"

	"github.com/mirror-tool/mirror/internal/minisign"
)

// Verifying a file signed by the stock tool (`minisign -S -l`: the legacy
// form, checked while the file streams through).
func ExamplePublicKey_Verify() {
	pubData, _ := os.ReadFile("testdata/plain.pub")
	sigData, _ := os.ReadFile("testdata/hello.txt.legacy.minisig")
	pub, err := minisign.ParsePublicKey(pubData)
	if err != nil {
		panic(err)
	}
	sig, err := minisign.ParseSignature(sigData)
	if err != nil {
		panic(err)
	}
	f, _ := os.Open("testdata/hello.txt")
	defer f.Close()
	fmt.Println("verified:", pub.Verify(sig, f) == nil, "prehashed:", sig.Prehashed)
	fmt.Println("trusted comment:", sig.TrustedComment)
	// Output:
	// verified: true prehashed: false
	// trusted comment: legacy hello.txt
}

// Reading a secret key file of the stock tool and signing with it.
func ExampleParsePrivateKey() {
	data, _ := os.ReadFile("testdata/plain.key") // minisign -G -W
	k, err := minisign.ParsePrivateKey(data, nil)
	if err != nil {
		panic(err)
	}
	msg := []byte("bundle bytes")
	sig, _ := k.Sign(bytes.NewReader(msg), "sequence:1", "signature from mirror")
	fmt.Println(k.Public().Verify(sig, bytes.NewReader(msg)) == nil)
	// Output: true
}
