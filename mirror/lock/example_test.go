package lock_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/mirror-tool/mirror/mirror/lock"
)

func ExampleAcquire() {
	state, _ := os.MkdirTemp("", "lock-example")
	defer os.RemoveAll(state)
	l, err := lock.Acquire(state)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Release()
	// A second run on the same state is refused at once.
	_, err = lock.Acquire(state)
	fmt.Println(errors.Is(err, lock.ErrLocked))
	// Output:
	// true
}
