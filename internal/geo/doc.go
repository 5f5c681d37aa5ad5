// Package geo is geo-replication's shared vocabulary: the names of
// replication cursors and properties, the source position format, the
// shape of a replicator's stats and of a replicated subscription update.
// It sits below both the broker (which stores replicated sends and reports
// stats) and package replication (the replicator, a client of the broker),
// so neither imports the other for them. It depends on nothing but the
// standard library.
package geo
