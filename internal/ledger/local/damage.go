package local

import (
	"fmt"
	"log/slog"
	"sync/atomic"
)

// damage counts what the store found unreadable, at recovery and on reads.
// Each damaged range is logged once, where it is found: recovery scans each
// segment once, and a record found damaged by a read is marked lost so that
// no read meets it again.
type damage struct {
	records     atomic.Int64 // damaged records and ranges of bytes
	lost        atomic.Int64 // entries lost to them
	quarantined atomic.Int64 // records of ledgers the index does not know
}

// record logs one damaged record or range at ERROR and counts it.
func (d *damage) record(log *slog.Logger, msg string, args ...any) {
	d.records.Add(1)
	log.Error(msg, args...)
}

// lose logs n entries lost at ERROR and counts them.
func (d *damage) lose(log *slog.Logger, msg string, n int64, args ...any) {
	d.lost.Add(n)
	log.Error(msg, append(args, "entries", n)...)
}

// Damage is what the store found damaged since it was opened.
type Damage struct {
	// CorruptRecords counts damaged journal records and ranges of bytes
	// (mb_storage_corrupt_records_total).
	CorruptRecords int64
	// LostEntries counts the entries lost to them: skipped by reads.
	LostEntries int64
	// QuarantinedRecords counts journal records of ledger ids the index does
	// not know; they are never served, and their segments are kept.
	QuarantinedRecords int64
}

// Damage returns what the store found damaged since it was opened.
func (s *Store) Damage() Damage {
	return Damage{
		CorruptRecords:     s.damage.records.Load(),
		LostEntries:        s.damage.lost.Load(),
		QuarantinedRecords: s.damage.quarantined.Load(),
	}
}

// damageProblems describes the damage for the health check; nil when none.
func (s *Store) damageProblems() []string {
	d := s.Damage()
	var out []string
	if d.CorruptRecords > 0 || d.LostEntries > 0 {
		out = append(out, fmt.Sprintf("storage: %d damaged journal records, %d entries lost (see the log, run mb verify)", d.CorruptRecords, d.LostEntries))
	}
	if d.QuarantinedRecords > 0 {
		out = append(out, fmt.Sprintf("storage: %d journal records of unknown ledgers quarantined", d.QuarantinedRecords))
	}
	return out
}
