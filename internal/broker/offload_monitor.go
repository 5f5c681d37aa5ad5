package broker

import (
	"context"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/meta"
)

// applyDeletionLag gives the ledger the namespace's deletion lag (unset:
// the broker's).
func applyDeletionLag(o ledger.Offloader, p meta.Policies) {
	if p.OffloadDeletionLagMs != nil {
		o.SetDeletionLag(time.Duration(*p.OffloadDeletionLagMs) * time.Millisecond)
	} else {
		o.SetDeletionLag(-1)
	}
}

// checkOffloadPolicies, run on every topic each PolicyCheckInterval (as
// Pulsar checks them on ledger rollover), starts an offload when the data not offloaded
// exceeds offload_threshold bytes (keeping about that much local), or
// entries are older than offload_threshold_in_seconds. When the policies
// cannot be read it does nothing this round.
func (t *Topic) checkOffloadPolicies(ctx context.Context) {
	if t.ledger == nil {
		return
	}
	o, ok := t.ledger.(ledger.Offloader)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, t.b.cfg.OperationTimeout)
	defer cancel()
	p, err := t.b.EffectivePolicies(ctx, t.name)
	if err != nil {
		t.b.metrics.enforcementSkips.Inc()
		return
	}
	applyDeletionLag(o, p)
	st := o.OffloadStatus()
	t.offloadCompacted(st.FirstUnoffloaded, p)
	if st.Status == ledger.OffloadRunning {
		return
	}
	last := t.ledger.LastEntryID()
	before := int64(-1)
	if n := p.OffloadThreshold; n != nil && *n >= 0 {
		if pending := t.ledger.Size() - o.OffloadedSize(); pending > *n {
			keep := int64(0)
			if avg := t.avgEntrySize(); avg > 0 {
				keep = *n / avg
			}
			before = max(before, last+1-keep)
		}
	}
	if secs := p.OffloadThresholdInSeconds; secs != nil && *secs >= 0 {
		ts := time.Now().Add(-time.Duration(*secs) * time.Second).UnixMilli()
		if id, err := findByPublishTimeFrom(ctx, t.ledger, max(st.FirstUnoffloaded, t.ledger.FirstEntryID()), uint64(ts)); err == nil {
			before = max(before, id)
		}
	}
	if before > st.FirstUnoffloaded {
		if err := o.Offload(before); err != nil && err != ledger.ErrOffloadRunning {
			t.b.log.Warn("offload by policy not started", "topic", t.fullName, "err", err)
		}
	}
}
