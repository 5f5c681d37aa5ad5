package connectors

import "sort"

// Shard is a shard of a stream (Kinesis, DynamoDB Streams) and its
// parents (a split has one, a merge two).
type Shard struct {
	ID, Parent, AdjacentParent string
}

// ReadyShards returns the shards to start reading, sorted: neither
// running nor ended, and every parent still listed has ended. A parent
// no longer listed (trimmed past the retention period) does not hold its
// children back.
func ReadyShards(shards []Shard, running, ended map[string]bool) []string {
	listed := make(map[string]bool, len(shards))
	for _, s := range shards {
		listed[s.ID] = true
	}
	waiting := func(parent string) bool { return parent != "" && listed[parent] && !ended[parent] }
	var out []string
	for _, s := range shards {
		if running[s.ID] || ended[s.ID] || waiting(s.Parent) || waiting(s.AdjacentParent) {
			continue
		}
		out = append(out, s.ID)
	}
	sort.Strings(out)
	return out
}
