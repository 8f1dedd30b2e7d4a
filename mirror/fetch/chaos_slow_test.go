//go:build slow

package fetch

func init() { chaosFiles = 2000 }
