package operator_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mirror-tool/mirror/internal/operator"
)

func Example() {
	// A fixed "random" source and time, so that the output below is stable;
	// use crypto/rand.Reader and time.Now() for a real key.
	rand := bytes.NewReader(bytes.Repeat([]byte{7}, 64))
	k, err := operator.Generate(rand, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	if err != nil {
		panic(err)
	}
	dir, _ := os.MkdirTemp("", "operator-example-")
	defer os.RemoveAll(dir)
	if err := k.Write(dir, []byte("passphrase")); err != nil {
		panic(err)
	}

	// The internet side (mirror sync) loads it back and signs.
	k, err = operator.Load(filepath.Join(dir, operator.KeyFile), []byte("passphrase"))
	if err != nil {
		panic(err)
	}
	sig, _ := k.Minisign.Sign(bytes.NewReader([]byte("bundle bytes")), "sequence:1", "mirror bundle")
	pub, _ := operator.LoadPublic(filepath.Join(dir, operator.PubFile))
	fmt.Println("minisign key id:", pub.ID)
	fmt.Println("bundle signature:", pub.Verify(sig, bytes.NewReader([]byte("bundle bytes"))) == nil)
	fmt.Println("openpgp fingerprint:", k.Fingerprint())
	fmt.Println("openpgp user id:", operator.UserID(k.Minisign.ID))
	// Output:
	// minisign key id: 0707070707070707
	// bundle signature: true
	// openpgp fingerprint: 6ECF7FFFE608264355FBCFD1D47917AD8D43C636
	// openpgp user id: mirror operator (minisign 0707070707070707)
}
