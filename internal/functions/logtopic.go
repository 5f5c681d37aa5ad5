package functions

import (
	"context"
	"log/slog"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// logSink publishes a function's log lines to its log topic (logTopic),
// best effort: a line that cannot be published is dropped, never blocks
// the function.
type logSink struct {
	r     *runner
	topic string
}

func (s *logSink) write(level slog.Level, msg string) {
	p, err := s.r.producer(s.topic)
	if err != nil {
		return
	}
	p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(msg),
		Properties: map[string]string{"fqfn": s.r.fqfn, "loglevel": level.String()}, EventTime: time.Now()},
		func(pulsar.MessageID, *pulsar.ProducerMessage, error) {})
}

// teeHandler logs to the node's log and to the log topic.
type teeHandler struct {
	slog.Handler
	sink *logSink
}

func (h teeHandler) Handle(ctx context.Context, rec slog.Record) error {
	msg := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key != "function" {
			msg += " " + a.String()
		}
		return true
	})
	h.sink.write(rec.Level, msg)
	if !h.Handler.Enabled(ctx, rec.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, rec)
}

// Enabled is true from Info up: the log topic gets the function's lines
// even when the node logs only warnings.
func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.Handler.Enabled(ctx, l)
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.Handler.WithAttrs(as), h.sink}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h.Handler.WithGroup(name), h.sink}
}
