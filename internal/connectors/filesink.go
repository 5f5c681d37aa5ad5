package connectors

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/apache/pulsar-client-go/pulsar"
)

// The file sink appends each message as a JSON line
// {"topic","key","value","properties","publishTime"} to a file on the
// node, fsyncs, and only then acknowledges: a crash before the fsync
// redelivers (a line may then appear twice; dedupe by "messageId").

type fileSinkSettings struct {
	// Path is the file; instance I > 0 of a parallel sink writes Path.I.
	Path string `json:"path"`
	// BatchSize bounds the lines written per fsync (default 500).
	BatchSize int `json:"batchSize"`
}

func (s *fileSinkSettings) Check() error {
	if s.Path == "" {
		return errors.New("path is required")
	}
	if s.BatchSize < 0 {
		return errors.New("batchSize must not be negative")
	}
	if s.BatchSize == 0 {
		s.BatchSize = 500
	}
	return nil
}

func init() {
	register(&Builtin{Name: "file", Kind: KindSink, Parallel: true,
		Description: "Appends messages as JSON lines to a file on the node; acknowledges after fsync",
		Settings:    func() any { return &fileSinkSettings{} },
		NewSink:     func(s any) Sink { return &fileSink{s: s.(*fileSinkSettings)} }})
}

type fileSink struct{ s *fileSinkSettings }

type fileLine struct {
	Topic       string            `json:"topic"`
	Key         string            `json:"key,omitempty"`
	Value       string            `json:"value"`
	Properties  map[string]string `json:"properties,omitempty"`
	PublishTime int64             `json:"publishTime"`
	MessageID   string            `json:"messageId"`
}

func (f *fileSink) Run(ctx context.Context, env *SinkEnv) error {
	path := f.s.Path
	if env.Instance > 0 {
		path += "." + strconv.Itoa(env.Instance)
	}
	file, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	defer file.Close()
	w := bufio.NewWriter(file)
	batch := make([]pulsar.Message, 0, f.s.BatchSize)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case m := <-env.Messages:
			batch = append(batch, m)
		}
	fill:
		for len(batch) < f.s.BatchSize {
			select {
			case m := <-env.Messages:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		for _, m := range batch {
			b, _ := json.Marshal(fileLine{Topic: m.Topic(), Key: m.Key(), Value: string(m.Payload()), Properties: m.Properties(),
				PublishTime: m.PublishTime().UnixMilli(), MessageID: messageIDString(m.ID())})
			w.Write(b)
			w.WriteByte('\n')
		}
		err := w.Flush()
		if err == nil {
			err = file.Sync()
		}
		if err != nil {
			env.WriteFailed(err)
			return fmt.Errorf("file sink write: %w", err)
		}
		for _, m := range batch {
			env.Ack(m)
		}
	}
}

// messageIDString is ledger:entry:partition, plus :batchIndex for a message
// of a batch (as Pulsar's BatchMessageIdImpl prints it): the client's
// String leaves the batch index out, so a batch's messages would share one.
func messageIDString(id pulsar.MessageID) string {
	s := fmt.Sprintf("%d:%d:%d", id.LedgerID(), id.EntryID(), id.PartitionIdx())
	if id.BatchSize() > 1 {
		s += ":" + strconv.Itoa(int(id.BatchIdx()))
	}
	return s
}
