package local

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/ledgertest"
	"github.com/messagebus/messagebus/internal/ledger/vfs"
)

var corruptSeeds = flag.Int("corrupt.seeds", 60, "number of random seeds each corruption test runs")

// journalRecord is where one record of a ledger lies in the journal.
type journalRecord struct {
	seq      uint64
	off, end int64
	ledger   int64
	entry    int64
}

// journalRecords lists the records recovery would take from the journal of
// a closed store, in segment and offset order.
func journalRecords(t *testing.T, fs vfs.FS, dir string, seed uint32) []journalRecord {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, name := range names {
		if seq, ok := parseSegmentName(name); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	var out []journalRecord
	for i, seq := range seqs {
		f, err := fs.Open(segmentName(dir, seq))
		if err != nil {
			t.Fatal(err)
		}
		_, err = scanSegment(f, seq, seed, 0, i == len(seqs)-1, func(h recordHeader, off int64, ok bool) {
			if !ok {
				t.Fatalf("segment %d: damaged record at %d before any damage", seq, off)
			}
			out = append(out, journalRecord{seq, off, off + recordHeaderSize + int64(h.size), h.ledger, h.entry})
		})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// corruptionRun writes acknowledged entries into a few ledgers across
// segments (sealed and active, preallocated, recycled and appended), with
// trims and a deleted ledger, and closes the store.
type corruptionRun struct {
	fs     vfs.FS
	opts   Options
	seed   uint32 // the journal's checksum seed
	log    *ackLog
	topics []string
	goneID int64 // a deleted ledger
}

func newCorruptionRun(t *testing.T, fs vfs.FS, rng *rand.Rand) *corruptionRun {
	r := &corruptionRun{
		fs: fs,
		opts: Options{
			Dir: t.TempDir(), FS: fs, SegmentSize: int64(2048 + rng.IntN(8<<10)), CacheBytes: -1,
			DisablePreallocation: rng.IntN(4) == 0, noZeroFill: rng.IntN(2) == 0, alwaysZeroFill: true,
			Logger: quietLogger(t),
		},
		log:    newAckLog(),
		topics: []string{"a", "b", "c"},
	}
	s := openStore(t, r.opts)
	r.seed = s.journal.seed
	gone := openLedger(t, s, "gone")
	r.goneID = gone.ID()
	ls := map[string]ledger.Ledger{}
	for _, topic := range r.topics {
		ls[topic] = openLedger(t, s, topic)
		r.log.ids[topic] = ls[topic].ID()
	}
	n := 150 + rng.IntN(150)
	for i := range n {
		topic := r.topics[rng.IntN(len(r.topics))]
		p := ledgertest.Payload(topic, i, 1+rng.IntN(600))
		r.log.ack(t, topic, ledgertest.MustAppend(t, ls[topic], p), p)
		if i%7 == 0 && i < n/2 {
			ledgertest.MustAppend(t, gone, ledgertest.Payload("gone", i, 50))
		}
		if i == n/2 {
			// Trim most of a, delete gone: their segments die and are
			// recycled or deleted.
			l := ls["a"]
			l.Trim(l.LastEntryID() - 3)
			r.log.trim("a", l.FirstEntryID())
			if err := s.Delete(context.Background(), "gone"); err != nil {
				t.Fatal(err)
			}
			s.collectSegments()
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return r
}

// verifyAfterDamage reopens the store and checks that every acknowledged
// entry is read back intact, but those whose records lie in lost (which must
// not be returned), that no id is reused and that the damage was reported
// when a live record was hit.
func (r *corruptionRun) verifyAfterDamage(t *testing.T, lost map[journalRecord]bool, what string) {
	t.Helper()
	s := openStore(t, r.opts)
	defer s.Close()
	var wantLost int
	for rec := range lost {
		for topic, id := range r.log.ids {
			if rec.ledger == id && rec.entry >= r.log.trimmed[topic] {
				wantLost++
			}
		}
	}
	for _, topic := range r.topics {
		l := openLedger(t, s, topic)
		if l.ID() != r.log.ids[topic] {
			t.Fatalf("%s: %s has ledger id %d, was %d", what, topic, l.ID(), r.log.ids[topic])
		}
		got := map[int64][]byte{}
		for _, e := range ledgertest.ReadAll(t, l, l.FirstEntryID()) {
			got[e.ID] = e.Data
		}
		r.log.mu.Lock()
		acked := r.log.entries[topic]
		r.log.mu.Unlock()
		maxID := int64(-1)
		for id, data := range acked {
			maxID = max(maxID, id)
			if id < r.log.trimmed[topic] {
				continue
			}
			if lost[journalRecord{ledger: l.ID(), entry: id}] {
				if _, ok := got[id]; ok {
					t.Fatalf("%s: %s entry %d was damaged and still returned", what, topic, id)
				}
				continue
			}
			if !bytes.Equal(got[id], data) {
				t.Fatalf("%s: %s entry %d lost or changed (%d bytes read, %d written)\n%s", what, topic, id, len(got[id]), len(data), dumpJournal(t, s, l.ID()))
			}
		}
		if id := ledgertest.MustAppend(t, l, []byte("after")); id <= maxID {
			t.Fatalf("%s: %s append after recovery got id %d, an id acknowledged before was %d", what, topic, id, maxID)
		}
	}
	d := s.Damage()
	if wantLost > 0 && (d.CorruptRecords == 0 || d.LostEntries < int64(wantLost)) {
		t.Fatalf("%s: %d live records damaged, reported %+v", what, wantLost, d)
	}
	if wantLost > 0 && len(s.Health()) == 0 {
		t.Fatalf("%s: damage not in Health", what)
	}
	if d.QuarantinedRecords != 0 {
		t.Fatalf("%s: %d records quarantined", what, d.QuarantinedRecords)
	}
	// A new ledger never gets an id the journal holds.
	nl := openLedger(t, s, "new")
	for _, id := range r.log.ids {
		if nl.ID() <= id {
			t.Fatalf("%s: new ledger got id %d, not above %d", what, nl.ID(), id)
		}
	}
}

// lostKey is how verifyAfterDamage looks records up.
func lostKey(rec journalRecord) journalRecord {
	return journalRecord{ledger: rec.ledger, entry: rec.entry}
}

// TestBitFlipCostsOneRecord flips one bit in a closed store's journal, at
// random offsets and in chosen fields of chosen records, in sealed and last
// segments: the record holding the bit is lost and reported, nothing else.
func TestBitFlipCostsOneRecord(t *testing.T) {
	fields := []struct {
		name     string
		from, to int // byte range within the record
	}{
		{"magic", 0, 4}, {"length", 4, 8}, {"segment", 8, 16}, {"ledger", 16, 24},
		{"entry", 24, 32}, {"data checksum", 32, 36}, {"header checksum", 36, 40}, {"payload", 40, -1},
	}
	for seed := range uint64(*corruptSeeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			fs := vfs.Default
			if seed%4 != 0 {
				fs = vfs.NewMem()
			}
			r := newCorruptionRun(t, fs, rng)
			dir := r.opts.Dir + "/journal"
			recs := journalRecords(t, fs, dir, r.seed)
			var seq uint64
			var off int64
			var what string
			lost := map[journalRecord]bool{}
			if seed%2 == 0 {
				// A chosen field of a chosen record: the first, the last,
				// or any; of a live ledger.
				var live []journalRecord
				for _, rec := range recs {
					if rec.ledger != controlLedger && rec.ledger != r.goneID {
						live = append(live, rec)
					}
				}
				rec := live[rng.IntN(len(live))]
				switch rng.IntN(3) {
				case 0:
					rec = live[0]
				case 1:
					rec = live[len(live)-1]
				}
				f := fields[rng.IntN(len(fields))]
				if f.to < 0 {
					f.to = int(rec.end - rec.off)
				}
				if f.from >= f.to { // an empty payload
					f = fields[0]
				}
				seq, off = rec.seq, rec.off+int64(f.from+rng.IntN(f.to-f.from))
				what = fmt.Sprintf("%s of ledger %d entry %d (segment %d at %d)", f.name, rec.ledger, rec.entry, rec.seq, off)
				lost[lostKey(rec)] = true
			} else {
				// Any byte of any segment.
				names, _ := fs.List(dir)
				var sizes []int64
				var seqs []uint64
				for _, name := range names {
					if sq, ok := parseSegmentName(name); ok {
						f, _ := fs.Open(segmentName(dir, sq))
						size, _ := f.Size()
						f.Close()
						if size > 0 {
							seqs, sizes = append(seqs, sq), append(sizes, size)
						}
					}
				}
				i := rng.IntN(len(seqs))
				seq, off = seqs[i], rng.Int64N(sizes[i])
				what = fmt.Sprintf("segment %d at %d", seq, off)
				for _, rec := range recs {
					if rec.seq == seq && off >= rec.off && off < rec.end {
						lost[lostKey(rec)] = true
						what += fmt.Sprintf(" (ledger %d entry %d)", rec.ledger, rec.entry)
					}
				}
			}
			bit := byte(1) << rng.IntN(8)
			rewrite(t, fs, segmentName(dir, seq), func(b []byte) []byte {
				b[off] ^= bit
				return b
			})
			r.verifyAfterDamage(t, lost, what)
		})
	}
}

// TestTruncatedSegment cuts a sealed segment at a record boundary or inside
// a record: the records after the cut are lost and reported, nothing else.
func TestTruncatedSegment(t *testing.T) {
	for seed := range uint64(*corruptSeeds / 2) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			fs := vfs.NewMem()
			r := newCorruptionRun(t, fs, rng)
			dir := r.opts.Dir + "/journal"
			recs := journalRecords(t, fs, dir, r.seed)
			last := recs[len(recs)-1].seq
			var sealed []journalRecord
			for _, rec := range recs {
				if rec.seq != last {
					sealed = append(sealed, rec)
				}
			}
			if len(sealed) == 0 {
				t.Skip("one segment")
			}
			rec := sealed[rng.IntN(len(sealed))]
			cut := rec.off
			if seed%2 == 1 {
				cut += 1 + rng.Int64N(rec.end-rec.off-1)
			}
			lost := map[journalRecord]bool{}
			for _, x := range recs {
				if x.seq == rec.seq && x.end > cut {
					lost[lostKey(x)] = true
				}
			}
			rewrite(t, fs, segmentName(dir, rec.seq), func(b []byte) []byte { return b[:cut] })
			r.verifyAfterDamage(t, lost, fmt.Sprintf("segment %d cut at %d", rec.seq, cut))
		})
	}
}

// TestPayloadLikeRecordNeverTaken: an entry whose payload is a whole valid
// record (as a client could send, knowing the format but not the journal's
// salt) is never taken for one when recovery resynchronises inside it.
func TestPayloadLikeRecordNeverTaken(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{Dir: t.TempDir(), FS: fs, Logger: quietLogger(t)}
	s := openStore(t, opts)
	victim := openLedger(t, s, "victim")
	ledgertest.MustAppend(t, victim, []byte("v0"))
	attacker := openLedger(t, s, "attacker")
	// Forged records for the victim's next ids, with every salt but the
	// right one: here, the seed of salt 0 and of salt+1.
	var forged []byte
	for _, seed := range []uint32{saltSeed(0), saltSeed(s.journal.salt + 1)} {
		forged = appendRecord(forged, seed, false, 1, victim.ID(), 1, []byte("forged"), dataChecksum([]byte("forged")))
	}
	ledgertest.MustAppend(t, attacker, append([]byte("xxxxxxxx"), forged...))
	ledgertest.MustAppend(t, victim, []byte("v1"))
	s.Close()
	recs := journalRecords(t, fs, s.journalDir, s.journal.seed)
	var rec journalRecord
	for _, x := range recs {
		if x.ledger == attacker.ID() {
			rec = x
		}
	}
	// Damage the attacker's record header: recovery resynchronises inside
	// its payload.
	rewrite(t, fs, segmentName(s.journalDir, rec.seq), func(b []byte) []byte {
		b[rec.off+5] ^= 0x10
		return b
	})
	s = openStore(t, opts)
	defer s.Close()
	victim = openLedger(t, s, "victim")
	es := ledgertest.ReadAll(t, victim, 0)
	if len(es) != 2 || string(es[0].Data) != "v0" || string(es[1].Data) != "v1" {
		t.Fatalf("victim reads %d entries: %v", len(es), es)
	}
	if d := s.Damage(); d.CorruptRecords != 1 {
		t.Fatalf("damage %+v, want the one damaged range", d)
	}
}
