package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// ErrOffloadNotConfigured: the broker runs without tiered storage.
var ErrOffloadNotConfigured = errors.New("offload is not configured on this broker (see --offload-driver)")

// ErrOffloadRunning: an offload of the topic is in progress.
var ErrOffloadRunning = ledger.ErrOffloadRunning

// OffloadStatus is a topic's last offload, as Pulsar's OffloadProcessStatus.
type OffloadStatus struct {
	ledger.OffloadStatus
	LedgerID int64 // of FirstUnoffloaded
}

func (b *Broker) offloader(ctx context.Context, name naming.Topic) (*Topic, ledger.Offloader, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	o, ok := t.ledger.(ledger.Offloader)
	if !ok {
		return nil, nil, ErrOffloadNotConfigured
	}
	return t, o, nil
}

// Offload starts offloading the entries of a topic before the message id
// (ledgerID, entryID) to the object store: a ledger id below the topic's
// offloads nothing, one above it everything written so far. It returns
// ErrOffloadRunning while an offload of the topic runs.
func (b *Broker) Offload(ctx context.Context, name naming.Topic, ledgerID, entryID int64) error {
	t, o, err := b.offloader(ctx, name)
	if err != nil {
		return err
	}
	before := entryID
	switch id := t.ledger.ID(); {
	case ledgerID < id:
		before = 0
	case ledgerID > id:
		before = t.ledger.LastEntryID() + 1
	}
	p, err := b.EffectivePolicies(ctx, name)
	if err != nil {
		return err
	}
	applyDeletionLag(o, p)
	if err := o.Offload(max(0, before)); err != nil {
		return fmt.Errorf("offload %s: %w", name, err)
	}
	t.offloadCompacted(before, p)
	return nil
}

// offloadCompacted offloads the whole compacted ledger (written once per
// compaction, never appended to) when the topic's offload reaches past its
// horizon: everything the compacted view summarises then lives in the
// object store. A failure is logged; the next offload tries again.
func (t *Topic) offloadCompacted(before int64, p meta.Policies) {
	v := t.compactedView()
	if v.l == nil || before <= v.horizon {
		return
	}
	o, ok := v.l.(ledger.Offloader)
	if !ok {
		return
	}
	applyDeletionLag(o, p)
	if end := v.l.LastEntryID() + 1; end > 0 && o.OffloadStatus().FirstUnoffloaded < end {
		if err := o.Offload(end); err != nil && !errors.Is(err, ledger.ErrOffloadRunning) {
			t.b.log.Warn("offload of the compacted ledger not started", "topic", t.fullName, "ledger", v.name, "err", err)
		}
	}
}

// OffloadStatus reports the last offload of a topic since it was loaded.
func (b *Broker) OffloadStatus(ctx context.Context, name naming.Topic) (OffloadStatus, error) {
	t, o, err := b.offloader(ctx, name)
	if err != nil {
		return OffloadStatus{}, err
	}
	return OffloadStatus{OffloadStatus: o.OffloadStatus(), LedgerID: t.ledger.ID()}, nil
}

// OffloadedSize is the bytes of a topic's entries held in the object store
// (0 without tiered storage).
func (b *Broker) OffloadedSize(ctx context.Context, name naming.Topic) (int64, error) {
	t, err := b.persistentTopic(ctx, name)
	if err != nil {
		return 0, err
	}
	return offloadedSize(t.ledger), nil
}

func offloadedSize(l ledger.Ledger) int64 {
	if o, ok := l.(ledger.Offloader); ok {
		return o.OffloadedSize()
	}
	return 0
}
