package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"
)

// produceOptions are the flags of `mb produce`.
type produceOptions struct {
	clientOptions
	messages   []string
	files      []string
	stdin      bool
	numProduce int
	key        string
	properties []string
	rate       float64
	noBatching bool
}

func newProduceCommand() *cobra.Command {
	o := &produceOptions{}
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Send messages to a topic (like pulsar-client produce)",
		Long: `Send messages to a topic. Each -m is one message; each -f sends the content
of a file as one message; --stdin sends each line read from standard input as
one message. --num-produce repeats the -m/-f messages that many times.`,
		Example: `  mb produce my-topic -m hello -m world
  mb produce persistent://public/default/orders -f order.json --key customer-7 -p source=cli
  seq 1000 | mb produce my-topic --stdin --rate 100`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, args[0])
		},
	}
	o.register(cmd)
	f := cmd.Flags()
	f.StringArrayVarP(&o.messages, "messages", "m", nil, "message to send (repeatable)")
	f.StringArrayVarP(&o.files, "files", "f", nil, "file whose content is sent as one message (repeatable)")
	f.BoolVar(&o.stdin, "stdin", false, "send each line of standard input as a message")
	f.IntVarP(&o.numProduce, "num-produce", "n", 1, "send the -m/-f messages this many times")
	f.StringVarP(&o.key, "key", "k", "", "message key")
	f.StringSliceVarP(&o.properties, "properties", "p", nil, "message properties: key=value (comma-separated or repeated)")
	f.Float64VarP(&o.rate, "rate", "r", 0, "messages per second; 0 for as fast as possible")
	f.BoolVar(&o.noBatching, "disable-batching", false, "send each message in its own entry")
	cmd.MarkFlagsMutuallyExclusive("messages", "stdin")
	cmd.MarkFlagsMutuallyExclusive("files", "stdin")
	cmd.MarkFlagsOneRequired("messages", "files", "stdin")
	return cmd
}

func (o *produceOptions) run(cmd *cobra.Command, topic string) error {
	props, err := parseProperties(o.properties)
	if err != nil {
		return err
	}
	if o.numProduce < 1 {
		return errors.New("--num-produce must be at least 1")
	}
	if o.stdin && o.numProduce != 1 {
		return errors.New("--num-produce cannot repeat --stdin")
	}
	if o.rate < 0 {
		return errors.New("--rate must not be negative")
	}
	payloads := make([][]byte, 0, len(o.messages)+len(o.files))
	for _, m := range o.messages {
		payloads = append(payloads, []byte(m))
	}
	for _, f := range o.files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		payloads = append(payloads, b)
	}

	ctx, stop := interruptible(cmd.Context())
	defer stop()
	client, err := o.newClient()
	if err != nil {
		return err
	}
	defer client.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: o.noBatching})
	if err != nil {
		return fmt.Errorf("create producer on %s: %w", topic, err)
	}
	defer producer.Close()

	s := &sender{
		producer: producer,
		key:      o.key,
		props:    props,
		progress: startProgress(cmd.ErrOrStderr(), o.progressEnabled(cmd), o.progressInterval, "produced"),
	}
	if o.rate > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(o.rate), 1)
	}
	if o.stdin {
		err = s.sendLines(ctx, cmd.InOrStdin())
	} else {
		for i := 0; i < o.numProduce && err == nil; i++ {
			for _, p := range payloads {
				if err = s.send(ctx, p); err != nil {
					break
				}
			}
		}
	}
	n, sendErr := s.finish(o.timeout)
	fmt.Fprintf(cmd.ErrOrStderr(), "produced %d messages to %s\n", n, topic)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted after %d messages", n)
	case sendErr != nil:
		return sendErr
	}
	return err
}

// interruptible is cancelled by the first SIGINT or SIGTERM; a second one
// kills the process as usual.
func interruptible(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// sender sends asynchronously (so batching works) and remembers the first
// failure; progress counts messages the broker has stored.
type sender struct {
	producer pulsar.Producer
	key      string
	props    map[string]string
	limiter  *rate.Limiter
	progress *progress

	wg      sync.WaitGroup
	mu      sync.Mutex
	sendErr error
}

func (s *sender) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendErr
}

func (s *sender) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sendErr == nil {
		s.sendErr = err
	}
}

func (s *sender) send(ctx context.Context, payload []byte) error {
	if err := s.failed(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.limiter != nil {
		if err := s.limiter.Wait(ctx); err != nil {
			return err
		}
	}
	s.wg.Add(1)
	s.producer.SendAsync(ctx, &pulsar.ProducerMessage{Payload: payload, Key: s.key, Properties: s.props},
		func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			defer s.wg.Done()
			if err != nil {
				s.fail(fmt.Errorf("send: %w", err))
				return
			}
			s.progress.add(1)
		})
	return nil
}

// sendLines sends each line of r (without its line ending) as a message.
// Lines are read in a goroutine so that an interrupt is not stuck behind a
// blocked read.
func (s *sender) sendLines(ctx context.Context, r io.Reader) error {
	type line struct {
		b   []byte
		err error
	}
	lines := make(chan line, 64)
	go func() {
		defer close(lines)
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			b, err := br.ReadBytes('\n')
			if len(b) > 0 || err == nil {
				b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
				select {
				case lines <- line{b: b}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					select {
					case lines <- line{err: fmt.Errorf("read stdin: %w", err)}:
					case <-ctx.Done():
					}
				}
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l, ok := <-lines:
			if !ok {
				return nil
			}
			if l.err != nil {
				return l.err
			}
			if err := s.send(ctx, l.b); err != nil {
				return err
			}
		}
	}
}

// finish waits for every receipt and returns how many messages were
// stored. Even after an interrupt, what was handed to the client gets its
// answer (stored or failed) before the count is final.
func (s *sender) finish(timeout time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.producer.FlushWithCtx(ctx); err != nil {
		s.fail(fmt.Errorf("flush: %w", err))
	}
	s.wg.Wait()
	return s.progress.close(), s.failed()
}
