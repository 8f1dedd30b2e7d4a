//go:build slow

package bundle

const (
	corruptSteps = 1500
	corruptTail  = 300
)
