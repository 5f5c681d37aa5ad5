package replication

import (
	"context"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/wire"
)

// Stats reports the replicator's state. The backlog counts entries after
// the cursor; the delay is the age of the oldest of them (0 when none).
func (r *Replicator) Stats(now time.Time) geo.Stats {
	msgs, bytes := r.msgsOut.Load(), r.bytesOut.Load()
	rate, tput := r.rate.rates(now, msgs, bytes)
	md := r.markDelete.Load()
	last := r.cfg.Source.LastEntryID()
	st := geo.Stats{
		MsgRateOut:       rate,
		MsgThroughputOut: tput,
		Connected:        r.connected.Load(),
		MsgOutCounter:    msgs,
		BytesOutCounter:  bytes,
	}
	if last > md {
		st.ReplicationBacklog = last - md
		st.ReplicationDelayInSeconds = r.oldestAge(now, md+1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.Connected {
		st.OutboundConnection = r.remoteAddr
		st.OutboundConnectedSince = r.connectedSince.UTC().Format(time.RFC3339Nano)
	}
	if r.lastErr != "" {
		st.LastError = r.lastErr
		st.LastErrorTimestamp = r.lastErrAt.UTC().Format(time.RFC3339Nano)
	}
	return st
}

// oldestAge is the age in seconds of entry id by its publish time.
func (r *Replicator) oldestAge(now time.Time, id int64) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	es, err := r.cfg.Source.Read(ctx, max(id, r.cfg.Source.FirstEntryID()), 1, 1)
	if err != nil || len(es) == 0 {
		return 0
	}
	meta, _, err := wire.SplitPayload(es[0].Data)
	var info wire.MetadataInfo
	if err != nil || wire.ParseMetadata(meta, &info) != nil {
		return 0
	}
	return max(0, now.Sub(time.UnixMilli(int64(info.PublishTime))).Milliseconds()/1000)
}

// rateSampler derives rates from counters, sampling at most once a second
// and repeating the last rates in between.
type rateSampler struct {
	mu                  sync.Mutex
	at                  time.Time
	lastMsgs, lastBytes int64
	msgRate, byteRate   float64
}

func (s *rateSampler) rates(now time.Time, msgs, bytes int64) (float64, float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at.IsZero() {
		s.at, s.lastMsgs, s.lastBytes = now, msgs, bytes
		return 0, 0
	}
	if el := now.Sub(s.at); el >= time.Second {
		s.msgRate = float64(msgs-s.lastMsgs) / el.Seconds()
		s.byteRate = float64(bytes-s.lastBytes) / el.Seconds()
		s.at, s.lastMsgs, s.lastBytes = now, msgs, bytes
	}
	return s.msgRate, s.byteRate
}
