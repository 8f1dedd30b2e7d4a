//go:build !slow

package bundle

// How densely the corruption tests probe a bundle: a quick pass by
// default, every few bytes with -tags=slow (steps_slow_test.go).
const (
	corruptSteps = 150
	corruptTail  = 64
)
