//go:build slow

package bundle

const (
	corruptSteps = 3000
	corruptTail  = 400
)
