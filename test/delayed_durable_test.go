package test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// msResolution is the tolerance on "not before its time": deliver_at_time is
// in whole milliseconds, truncated by the client.
const msResolution = 2 * time.Millisecond

// TestDelayedDurableAfterKill sends delayed and immediate messages to a
// Shared subscription, acks the immediate ones, SIGKILLs the broker before
// any delayed message is due and restarts it: every delayed message arrives
// once, not before its time, and no acked message comes back.
func TestDelayedDurableAfterKill(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	topic := uniqueTopic(t)
	client := newClient(t, p.brokerURL)
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "d", Type: pulsar.Shared})
	if err != nil {
		t.Fatal(err)
	}
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const delayed, immediate = 20, 10
	due := map[string]time.Time{} // payload -> earliest allowed arrival
	for i := range delayed + immediate {
		if i%3 == 0 && i/3 < immediate {
			payload := fmt.Sprintf("now-%d", i)
			if _, err := producer.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(payload)}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		delay := 2*time.Second + time.Duration(len(due))*100*time.Millisecond // 2s .. 3.9s
		payload := fmt.Sprintf("later-%d", i)
		due[payload] = time.Now().Add(delay) // the client computes its deliver_at_time after this
		if _, err := producer.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(payload), DeliverAfter: delay}); err != nil {
			t.Fatal(err)
		}
	}
	if len(due) != delayed {
		t.Fatalf("sent %d delayed messages, want %d", len(due), delayed)
	}
	for _, m := range receiveN(t, consumer, immediate, 5*time.Second) {
		if !strings.HasPrefix(string(m.Payload()), "now-") {
			t.Fatalf("delayed message %q arrived early", m.Payload())
		}
		if err := consumer.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	// Let the acks reach the cursor store (saved every 200ms, flushed every
	// 500ms) and the delayed index flush; the earliest delayed message is
	// due 2s after it was sent.
	time.Sleep(1200 * time.Millisecond)
	earliest := time.Now().Add(time.Hour)
	for _, d := range due {
		if d.Before(earliest) {
			earliest = d
		}
	}
	if time.Now().After(earliest) {
		t.Skip("too slow to kill the broker before the first delayed message is due")
	}
	consumer.Close()
	producer.Close()
	client.Close()
	p.kill(t)

	p = startProc(t, dir, p.brokerPort, p.httpPort)
	client = newClient(t, p.brokerURL)
	consumer, err = client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "d", Type: pulsar.Shared})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]bool{}
	for _, m := range receiveN(t, consumer, delayed, 15*time.Second) {
		arrived, payload := time.Now(), string(m.Payload())
		d, ok := due[payload]
		switch {
		case !ok:
			t.Fatalf("unexpected message %q (acked before the kill?)", payload)
		case seen[payload]:
			t.Fatalf("message %q delivered twice", payload)
		case arrived.Before(d.Add(-msResolution)):
			t.Fatalf("message %q arrived %v before its time", payload, d.Sub(arrived))
		}
		seen[payload] = true
		if err := consumer.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	expectNoMessage(t, consumer, time.Second)
}

// TestDelayedMemoryBounded delays 200,000 messages by an hour on one
// subscription: the broker's resident memory grows by less than 64 MiB (the
// ledger's per-entry index and the Pebble memtables of the delayed store,
// not the delayed entries: those are on disk but for a window of at most
// 8192). A message delayed by 1s sent afterwards still arrives on time.
func TestDelayedMemoryBounded(t *testing.T) {
	n := 200_000
	if raceEnabled {
		n = 50_000 // the race detector's broker is slower; memory is not checked
	}
	const rssGrowthBound = 64 << 20
	dir := t.TempDir()
	// A small entry cache, so that the ledger's cache of recent entries does
	// not hide what the delayed index takes.
	p := startProc(t, dir, 0, 0, "--cache-size", strconv.Itoa(1<<20))
	topic := uniqueTopic(t)
	client := newClient(t, p.brokerURL)
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "big", Type: pulsar.Shared})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{
		Topic: topic, BatchingMaxPublishDelay: time.Millisecond, MaxPendingMessages: 10000,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ctx := context.Background()
	// Warm up the paths once so the baseline includes them.
	if _, err := producer.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	receiveN(t, consumer, 1, 5*time.Second)
	before := vmRSS(t, p)

	start := time.Now()
	var failed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		producer.SendAsync(ctx, &pulsar.ProducerMessage{
			Payload: fmt.Appendf(nil, "hour-%06d", i), DeliverAfter: time.Hour,
		}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d sends failed", f)
	}
	sent := time.Since(start)

	// Sent after the 200,000: the dispatcher reaches it after indexing them all.
	dueAt := time.Now().Add(time.Second)
	if _, err := producer.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("soon"), DeliverAfter: time.Second}); err != nil {
		t.Fatal(err)
	}
	m := receiveN(t, consumer, 1, 10*time.Second)[0]
	arrived := time.Now()
	if string(m.Payload()) != "soon" {
		t.Fatalf("received %q, want the message delayed by 1s", m.Payload())
	}
	if arrived.Before(dueAt.Add(-msResolution)) || arrived.After(dueAt.Add(1500*time.Millisecond)) {
		t.Fatalf("message delayed by 1s arrived %v after send", arrived.Sub(dueAt.Add(-time.Second)))
	}
	consumer.Ack(m)
	after := vmRSS(t, p)
	t.Logf("sent %d delayed messages in %v; broker RSS %d MiB before, %d MiB after (+%d MiB, bound %d MiB); 1s-delayed message arrived after %v",
		n, sent.Round(time.Millisecond), before>>20, after>>20, (after-before)>>20, rssGrowthBound>>20,
		arrived.Sub(dueAt.Add(-time.Second)).Round(time.Millisecond))
	if after-before > rssGrowthBound && !raceEnabled {
		t.Fatalf("broker RSS grew by %d MiB for %d delayed messages, bound %d MiB", (after-before)>>20, n, rssGrowthBound>>20)
	}
	expectNoMessage(t, consumer, 500*time.Millisecond)
}

// vmRSS reads the resident set size of the broker process.
func vmRSS(t *testing.T, p *proc) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}
