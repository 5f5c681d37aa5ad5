package delayed

// raceEnabled is set when the race detector is on; slow tests do less.
var raceEnabled bool
