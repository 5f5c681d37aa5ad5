package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory, unmounted when
// the test ends; it skips the test when mounting is not permitted.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("a small file system is needed and mounting one is not permitted here (root only): mount: %v %s", err, out)
	}
	t.Cleanup(func() { // after the broker's cleanup, which kills it
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// reasonLog keeps what the Pulsar client logs about send errors.
type reasonLog struct {
	mu    sync.Mutex
	lines []string
}

func (r *reasonLog) Enabled(context.Context, slog.Level) bool { return true }
func (r *reasonLog) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *reasonLog) WithGroup(string) slog.Handler            { return r }
func (r *reasonLog) Handle(_ context.Context, rec slog.Record) error {
	if strings.Contains(rec.Message, "send error") {
		r.mu.Lock()
		r.lines = append(r.lines, rec.Message)
		r.mu.Unlock()
	}
	return nil
}

func (r *reasonLog) any(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pollHTTP polls url until its body satisfies ok: the broker's health is
// external state we can only observe by asking.
func pollHTTP(t *testing.T, url, what string, ok func(status int, body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := httpGet(t, url)
		if ok(status, body) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last answer %d %q", what, status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDiskFull runs mb on a 64 MiB file system: sends fail with a disk-full
// PersistenceError once it is full, health says degraded, consumers go on;
// once space is freed sends succeed again without a restart, and everything
// acknowledged is read back, also after kill -9. The log stays short.
func TestDiskFull(t *testing.T) {
	for _, minFree := range []string{"1%", "0"} {
		t.Run("min-free-disk="+minFree, func(t *testing.T) { diskFull(t, minFree) })
	}
}

func diskFull(t *testing.T, minFree string) {
	mnt := mountTmpfs(t, 64<<20)
	dataDir := filepath.Join(mnt, "data")
	// Unlimited retention: the "live" consumer acks everything, and with
	// Pulsar's default (0/0) a policy check during a slow run would trim
	// what the check after the restart reads back.
	args := []string{"--journal-segment-size", fmt.Sprint(4 << 20), "--min-free-disk", minFree,
		"--default-retention-time-minutes", "-1", "--default-retention-size-mb", "-1"}
	p := startProc(t, dataDir, 0, 0, args...)

	// Leave about 12 MiB for messages.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, max(0, freeBytes(t, mnt)-12<<20)), 0o644); err != nil {
		t.Fatal(err)
	}

	reasons := &reasonLog{}
	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: p.brokerURL, OperationTimeout: 10 * time.Second,
		ConnectionTimeout: 5 * time.Second, Logger: plog.NewLoggerWithSlog(slog.New(reasons))})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topic := "persistent://public/default/disk-full"
	// Consumers on a connection of their own: the client closes a
	// producer's connection on each PersistenceError.
	consumerClient := newClient(t, p.brokerURL)
	defer consumerClient.Close()
	consumer, err := consumerClient.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "live",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true,
		SendTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()

	rng := rand.New(rand.NewPCG(1, 2))
	var acked [][]byte // in send order
	send := func(i int) error {
		payload := fmt.Appendf(nil, "m%06d:", i)
		for len(payload) < 64<<10 {
			payload = append(payload, byte('a'+rng.IntN(26)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := producer.Send(ctx, &pulsar.ProducerMessage{Payload: payload})
		if err == nil {
			acked = append(acked, payload)
		}
		return err
	}
	i := 0
	for ; ; i++ {
		if i > 2000 {
			t.Fatal("no send failed on a full disk")
		}
		if err := send(i); err != nil {
			t.Logf("send %d failed as the disk filled: %v", i, err)
			break
		}
	}
	if !reasons.any("PersistenceError") || !reasons.any("disk full: ") {
		t.Errorf("the client was not told the disk is full; it logged %q", reasons.lines)
	}

	// Degraded, not dead: health, metrics, admin API and consumers work.
	if status, body := httpGet(t, p.webURL+"/admin/v2/brokers/health"); status != 200 || !strings.HasPrefix(body, "degraded: disk full: ") {
		t.Fatalf("health while full: %d %q", status, body)
	}
	if _, body := httpGet(t, p.webURL+"/metrics"); !strings.Contains(body, "\nmb_storage_disk_full 1\n") {
		t.Error("mb_storage_disk_full is not 1 while full")
	}
	if status, body := httpGet(t, p.webURL+"/admin/v2/persistent/public/default"); status != 200 || !strings.Contains(body, topic) {
		t.Fatalf("topic list while full: %d %q", status, body)
	}
	received := map[string]bool{}
	receive := func(c pulsar.Consumer, want [][]byte) {
		t.Helper()
		for k := 0; k < len(want); {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			msg, err := c.Receive(ctx)
			cancel()
			if err != nil {
				t.Fatalf("receive %d of %d: %v", k, len(want), err)
			}
			c.Ack(msg)
			switch got := string(msg.Payload()); {
			case got == string(want[k]):
				received[got] = true
				k++
			case received[got]: // redelivered after a reconnect
			default:
				t.Fatalf("message %d: got %.8q, want %.8q", k, got, want[k])
			}
		}
	}
	receive(consumer, acked)
	before := len(acked)

	// Space is freed: sends succeed again, without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	pollHTTP(t, p.webURL+"/healthz", "health once space is freed", func(status int, body string) bool {
		return status == 200 && body == "ok"
	})
	deadline := time.Now().Add(30 * time.Second)
	for len(acked) < before+20 {
		i++
		if err := send(i); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("sends still fail after space was freed: %v", err)
			}
		}
	}
	receive(consumer, acked[before:])
	if _, body := httpGet(t, p.webURL+"/metrics"); !strings.Contains(body, "\nmb_storage_disk_full 0\n") {
		t.Error("mb_storage_disk_full is not 0 after recovery")
	}
	producer.Close()
	consumer.Close()
	client.Close()
	consumerClient.Close()

	// Bounded logging: failures are summarized, not logged one by one.
	logged := p.stderr.String()
	if n := strings.Count(logged, "\n"); n > 60 {
		t.Errorf("%d log lines while the disk was full:\n%s", n, logged)
	}
	t.Logf("broker log:\n%s", logged)

	// After kill -9, everything acknowledged is still there, in order.
	p.kill(t)
	p = startProc(t, dataDir, 0, 0, args...)
	client2 := newClient(t, p.brokerURL)
	defer client2.Close()
	verify, err := client2.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "verify",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer verify.Close()
	next := 0
	for next < len(acked) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		msg, err := verify.Receive(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("after restart: only %d of %d acknowledged messages read", next, len(acked))
		}
		if err != nil {
			t.Fatal(err)
		}
		// A send that timed out may have been stored after all: skip
		// anything not acknowledged, but never lose or reorder what was.
		if bytes.Equal(msg.Payload(), acked[next]) {
			next++
		}
	}
}
