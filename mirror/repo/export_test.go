package repo

// SetCheckpointHook lets this package's external tests (which may import the
// importer) observe the steps of a publish.
func SetCheckpointHook(f func(step string)) { onCheckpoint = f }
