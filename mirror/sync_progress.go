package mirror

// Progress receives what `mirror sync` is doing, for bars on a terminal or
// log lines. Methods may be called from several goroutines at once; the
// command's implementation must be safe for that. The library never prints.
type Progress interface {
	// Stage starts a stage ("resolve", "fetch", "bundle") with the number
	// of items it will go through (0 when unknown).
	Stage(name string, items int)
	// Bytes reports n more bytes received from upstreams.
	Bytes(n int64)
	// Package reports one package decided (accepted or rejected).
	Package(r PackageResult)
	// BundleBytes reports blob bytes written into the bundle so far.
	BundleBytes(done, total int64)
}

// NopProgress discards progress.
type NopProgress struct{}

func (NopProgress) Stage(string, int)        {}
func (NopProgress) Bytes(int64)              {}
func (NopProgress) Package(PackageResult)    {}
func (NopProgress) BundleBytes(int64, int64) {}
