package cluster

// SetCrashHook makes the store stop a rewrite or collection step where f
// returns true for its point, as if the process died there (tests only).
func SetCrashHook(s *Store, f func(point string) bool) { s.crashHook = f }
