package compaction

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/memory"
)

// slowLedger completes appends later, from other goroutines, and records
// the most bytes ever appended and not yet complete.
type slowLedger struct {
	ledger.Ledger
	mu       sync.Mutex
	inFlight int
	peak     int
}

func (l *slowLedger) Append(data []byte, done func(int64, error)) {
	l.mu.Lock()
	l.inFlight += len(data)
	l.peak = max(l.peak, l.inFlight)
	l.mu.Unlock()
	l.Ledger.Append(data, func(id int64, err error) { // in order; completed later
		go func() {
			l.mu.Lock()
			l.inFlight -= len(data)
			l.mu.Unlock()
			done(id, err)
		}()
	})
}

// TestCompactBoundsBytesInFlight: the compacted ledger shares the journal
// with producers; a compaction never has more than maxInFlightBytes of
// appends queued (plus one entry), so no producer's group commit carries
// megabytes of compacted data. Read the result back: nothing lost.
func TestCompactBoundsBytesInFlight(t *testing.T) {
	s := memory.New()
	topic, err := s.Open(context.Background(), "topic")
	if err != nil {
		t.Fatal(err)
	}
	value := string(make([]byte, 10<<10))
	var entries [][]byte
	for i := range 400 { // 4 MB of distinct keys: everything survives
		entries = append(entries, single(msg{key: fmt.Sprintf("k%d", i), value: value}))
	}
	appendAll(t, topic, entries...)
	inner, err := s.Open(context.Background(), "compacted")
	if err != nil {
		t.Fatal(err)
	}
	out := &slowLedger{Ledger: inner}
	res, err := Compact(context.Background(), Input{Topic: topic, PreviousHorizon: -1, Horizon: topic.LastEntryID()}, out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept != 400 || res.Bytes < 4_000_000 {
		t.Fatalf("kept %d messages, %d bytes; want 400, over 4 MB", res.Kept, res.Bytes)
	}
	if out.peak > maxInFlightBytes+len(entries[0])+64 {
		t.Errorf("peak bytes in flight %d, want at most %d (+ one entry)", out.peak, maxInFlightBytes)
	}
	if got := len(viewOf(t, inner)); got != 400 {
		t.Errorf("compacted view has %d keys, want 400", got)
	}
}
