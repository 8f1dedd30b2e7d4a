package mirror_test

import (
	"fmt"

	"github.com/mirror-tool/mirror/mirror"
)

// The files given to `mirror import` become bundles: the parts of a split
// bundle go together, detached signatures for stock tools are skipped.
func ExampleGroupBundles() {
	groups := mirror.GroupBundles([]string{
		"usb/week48.tar.zst.part-002", "usb/week47.tar.zst", "usb/week47.tar.zst.minisig", "usb/week48.tar.zst.part-001",
	})
	for _, g := range groups {
		fmt.Println(g)
	}
	// Output:
	// [usb/week48.tar.zst.part-002 usb/week48.tar.zst.part-001]
	// [usb/week47.tar.zst]
}
