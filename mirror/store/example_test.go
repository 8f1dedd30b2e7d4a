package store_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/mirror-tool/mirror/mirror/store"
)

func ExampleStore_Put() {
	dir, _ := os.MkdirTemp("", "store-example")
	defer os.RemoveAll(dir)
	s, err := store.Open(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	// The announced hash comes from a signed index.
	const sum = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // sha256("hello")
	fmt.Println(s.Put(ctx, strings.NewReader("hello"), sum, 5))
	// Other bytes under the same name are refused, and nothing is stored.
	err = s.Put(ctx, strings.NewReader("HELLO"), "185f8db32271fe25f561a6fc938b2e264306ec304eda518007d1764826381969", 5)
	fmt.Println(err != nil)
	ok, _ := s.Has(sum)
	fmt.Println(ok)
	// Output:
	// <nil>
	// true
	// true
}
