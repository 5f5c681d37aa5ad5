//go:build race

package delayed

func init() { raceEnabled = true }
