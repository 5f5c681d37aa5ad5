package local

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
)

// Report is what Verify found in a store.
type Report struct {
	Segments int   // journal segment files
	Bytes    int64 // their size
	Ledgers  int   // ledgers the index knows
	Entries  int64 // entries readable
	// Lost lists, by ledger name, the entries lost to damage (not readable).
	Lost map[string]int64
	Damage
	// TornTail is how many bytes past the last record of the last segment
	// the next start would truncate: a write a crash interrupted, not damage.
	TornTail int64
}

// Clean reports whether nothing is damaged, lost or quarantined.
func (r Report) Clean() bool {
	return r.CorruptRecords == 0 && r.LostEntries == 0 && r.QuarantinedRecords == 0
}

// Verify checks the store in dir without changing anything: the index is
// opened read-only, and every segment is scanned as recovery would (every
// finding is logged to log as recovery logs it). The store must not be open.
func Verify(dir string, log *slog.Logger) (Report, error) {
	opts := Options{Dir: dir, Logger: log}
	if err := opts.setDefaults(); err != nil {
		return Report{}, err
	}
	s := &Store{
		opts:        opts,
		fs:          opts.FS,
		journalDir:  filepath.Join(dir, "journal"),
		log:         log,
		readOnly:    true,
		segs:        &segmentSet{m: map[uint64]*segment{}},
		ledgers:     map[string]*ledgerState{},
		quarantined: map[uint64]bool{},
	}
	reg, st, err := openRegistry(filepath.Join(dir, "index"), log, true)
	if err != nil {
		return Report{}, fmt.Errorf("ledger/local: %w", err)
	}
	defer reg.close()
	s.reg = reg
	s.journal = newJournal(s.fs, s.journalDir, opts.SegmentSize, false, log, nil, nil, s.segs)
	byID := s.loadLedgers(st)
	tail := &tornTail{Handler: log.Handler()}
	s.log = slog.New(tail)
	err = s.recover(byID, st)
	s.segs.closeAll()
	if err != nil {
		return Report{}, fmt.Errorf("ledger/local: %s: %w", s.journalDir, err)
	}
	r := Report{Ledgers: len(byID), Lost: map[string]int64{}, Damage: s.Damage(), TornTail: tail.bytes}
	names, err := s.fs.List(s.journalDir)
	if err != nil {
		return r, err
	}
	for _, name := range names {
		if seq, ok := parseSegmentName(name); ok {
			r.Segments++
			if f, err := s.fs.Open(segmentName(s.journalDir, seq)); err == nil {
				size, _ := f.Size()
				r.Bytes += size
				f.Close()
			}
		}
	}
	ids := make([]int64, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		l := byID[id]
		r.Entries += l.count
		// l.lost counts the entries lost after the ledger's first entry;
		// those lost before it moved its first entry up from the trim point.
		if lost := l.lost + l.first - st.trims[id]; lost > 0 {
			r.Lost[l.name] = lost
		}
	}
	return r, nil
}

// tornTail passes log records on and adds up the bytes of the torn tail
// recovery reports.
type tornTail struct {
	slog.Handler
	bytes int64
}

func (t *tornTail) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == msgTornTail {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "bytes" {
				t.bytes += a.Value.Int64()
			}
			return true
		})
	}
	return t.Handler.Handle(ctx, r)
}
