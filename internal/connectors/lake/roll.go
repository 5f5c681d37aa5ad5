package lake

import (
	"context"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/connectors"
)

// batch is what the roll loop fills: an append-mode file or an upsert
// table.
type batch interface {
	// add takes m (its row is written at the next write).
	add(m pulsar.Message)
	// write stores what was added since the last write.
	write(ctx context.Context) error
}

// rolling is a batch with the messages it waits to acknowledge.
type rolling struct {
	b      batch
	msgs   []pulsar.Message
	bytes  int64
	opened time.Time // when its oldest pending message arrived
}

// rollLoop is both modes' Run loop: messages go to the batch named by
// keyOf (made by open when missing, with room for hint messages), and a
// batch is written once its pending payloads reach rollSizeBytes or its
// oldest pending message waited rollIntervalMs; its messages are acknowledged only after the
// write succeeded. keep says whether a written batch stays (an upsert
// table, written here) or is dropped (a file, handed to a writer that
// encodes and stores it while the next file fills). A failed write ends
// the session: the unacknowledged messages come again.
func (k *sink) rollLoop(ctx context.Context, env *connectors.SinkEnv, keep bool,
	keyOf func(context.Context, pulsar.Message) (string, error), open func(ctx context.Context, key string, m pulsar.Message, hint int) (batch, error)) error {
	roll := time.Duration(k.s.RollIntervalMs) * time.Millisecond
	tick := time.NewTicker(max(roll/4, 50*time.Millisecond))
	defer tick.Stop()
	batches := map[string]*rolling{}
	var w *writer
	var failed <-chan error // nil (never ready) without a writer
	if !keep {
		w = startWriter(ctx, env)
		defer w.stop()
		failed = w.failed
	}
	// Batches are made with room for the messages of the last one
	// written: growing slices of 100,000 messages by appends copies them
	// often.
	hint := 0
	flush := func(key string, r *rolling) error {
		hint = len(r.msgs) + len(r.msgs)/8
		if w != nil {
			delete(batches, key)
			return w.hand(ctx, r)
		}
		if err := r.b.write(ctx); err != nil {
			env.WriteFailed(err)
			return err
		}
		for _, m := range r.msgs {
			env.Ack(m)
		}
		r.msgs, r.bytes = nil, 0
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			// Unwritten messages stay unacknowledged: they come again.
			return nil
		case err := <-failed:
			return err
		case m := <-env.Messages:
			key, err := keyOf(ctx, m)
			if err != nil {
				return err
			}
			r := batches[key]
			if r == nil {
				b, err := open(ctx, key, m, hint)
				if err != nil {
					return err
				}
				r = &rolling{b: b, msgs: make([]pulsar.Message, 0, hint)}
				batches[key] = r
			}
			if len(r.msgs) == 0 {
				r.opened = time.Now()
			}
			r.b.add(m)
			r.msgs = append(r.msgs, m)
			r.bytes += int64(len(m.Payload()))
			if r.bytes >= k.s.RollSizeBytes {
				if err := flush(key, r); err != nil {
					return err
				}
			}
		case now := <-tick.C:
			for key, r := range batches {
				if len(r.msgs) > 0 && now.Sub(r.opened) >= roll {
					if err := flush(key, r); err != nil {
						return err
					}
				}
			}
		}
	}
}

// writer writes the files rollLoop hands it, one at a time and in order,
// and acknowledges each file's messages after it is stored. The hand-off
// waits while a file is being written: at most two files are held, the
// one being written and the one filling.
type writer struct {
	files  chan *rolling
	failed chan error // the write error that stopped the writer
	done   chan struct{}
}

func startWriter(ctx context.Context, env *connectors.SinkEnv) *writer {
	w := &writer{files: make(chan *rolling), failed: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for r := range w.files {
			if err := r.b.write(ctx); err != nil {
				if ctx.Err() == nil {
					env.WriteFailed(err)
				}
				w.failed <- err
				return
			}
			for _, m := range r.msgs {
				env.Ack(m)
			}
		}
	}()
	return w
}

// hand gives r to the writer once it has finished the file before.
func (w *writer) hand(ctx context.Context, r *rolling) error {
	select {
	case w.files <- r:
		return nil
	case err := <-w.failed:
		return err
	case <-ctx.Done():
		return nil // the loop ends; r's messages come again
	}
}

// stop waits for the file being written.
func (w *writer) stop() {
	close(w.files)
	<-w.done
}
