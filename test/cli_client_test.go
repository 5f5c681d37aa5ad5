package test

// Tests of `mb produce` and `mb consume` running the built binary.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

// consumedLine is one line of `mb consume --output json`.
type consumedLine struct {
	Topic           string            `json:"topic"`
	MessageID       string            `json:"messageId"`
	Key             string            `json:"key"`
	Properties      map[string]string `json:"properties"`
	PublishTime     time.Time         `json:"publishTime"`
	RedeliveryCount int               `json:"redeliveryCount"`
	Payload         *string           `json:"payload"`
	PayloadBase64   string            `json:"payloadBase64"`
}

func parseConsumed(t *testing.T, out string) []consumedLine {
	t.Helper()
	var msgs []consumedLine
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m consumedLine
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("consume output line is not JSON: %v\n%q", err, line)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func cliPayloads(msgs []consumedLine) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		if m.Payload != nil {
			out[i] = *m.Payload
		}
	}
	return out
}

var messageIDPattern = regexp.MustCompile(`^\d+:\d+:-?\d+(:\d+)?$`)

func TestCLIProduceConsumeRoundTrip(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := uniqueTopic(t)
	r := runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(),
		"-m", "a", "-m", "b,with comma", "-m", "c", "--num-produce", "2",
		"--key", "k1", "--properties", "x=1,y=2", "-p", "z=a=b")
	r.ok(t)
	if !strings.Contains(r.stderr, "produced 6 messages") {
		t.Fatalf("produce summary: %q", r.stderr)
	}

	start := time.Now().Add(-time.Minute)
	r = runCLI(t, "", "consume", topic, "--service-url", s.BrokerURL(), "-s", "sub",
		"--position", "earliest", "-n", "6", "--output", "json")
	msgs := parseConsumed(t, r.ok(t))
	if got := strings.Join(cliPayloads(msgs), "|"); got != "a|b,with comma|c|a|b,with comma|c" {
		t.Fatalf("payloads %q", got)
	}
	for _, m := range msgs {
		if m.Key != "k1" || len(m.Properties) != 3 || m.Properties["x"] != "1" || m.Properties["y"] != "2" || m.Properties["z"] != "a=b" {
			t.Fatalf("key/properties: %+v", m)
		}
		if m.Topic != topic || !messageIDPattern.MatchString(m.MessageID) || m.PublishTime.Before(start) || m.PublishTime.After(time.Now().Add(time.Minute)) {
			t.Fatalf("topic/id/publish time: %+v", m)
		}
	}
	if !strings.Contains(r.stderr, "consumed 6 messages") {
		t.Fatalf("consume summary: %q", r.stderr)
	}
}

// TestCLIConsumeStopsAfterNAndAcks: -n stops the consumer, and what it
// printed was acknowledged: the next run of the same subscription continues.
func TestCLIConsumeStopsAfterNAndAcks(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := uniqueTopic(t)
	runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(), "-m", "1", "-m", "2", "-m", "3", "-m", "4", "-m", "5").ok(t)
	consume := func(n int) string {
		return runCLI(t, "", "consume", topic, "--service-url", s.BrokerURL(), "-s", "s",
			"--position", "earliest", "-n", fmt.Sprint(n)).ok(t)
	}
	// The five messages share one batch: acknowledgement is per message.
	if out := consume(2); out != "1\n2\n" {
		t.Fatalf("first run: %q", out)
	}
	if out := consume(1); out != "3\n" {
		t.Fatalf("second run: %q", out)
	}
	if out := consume(2); out != "4\n5\n" {
		t.Fatalf("third run: %q", out)
	}
	// Default -n is 1, default output text.
	runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(), "-m", "6", "-m", "7").ok(t)
	if out := runCLI(t, "", "consume", topic, "--service-url", s.BrokerURL(), "-s", "s").ok(t); out != "6\n" {
		t.Fatalf("default -n: %q", out)
	}
}

func TestCLIProduceFromStdinAndFiles(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := uniqueTopic(t)
	runCLI(t, "line one\nline two\r\n\nline four", "produce", topic, "--service-url", s.BrokerURL(), "--stdin").ok(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "doc.json")
	os.WriteFile(text, []byte("{\"multi\":\n\"line\"}\n"), 0o644)
	binary := filepath.Join(dir, "blob")
	blob := []byte{0xff, 0x00, 0xfe, 'x'}
	os.WriteFile(binary, blob, 0o644)
	runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(), "-f", text, "--files", binary).ok(t)

	msgs := parseConsumed(t, runCLI(t, "", "consume", topic, "--service-url", s.BrokerURL(), "-s", "s",
		"-p", "earliest", "-n", "6", "-o", "json").ok(t))
	got := cliPayloads(msgs)
	want := []string{"line one", "line two", "", "line four", "{\"multi\":\n\"line\"}\n", ""}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("payloads %q, want %q", got, want)
	}
	if msgs[5].Payload != nil || msgs[5].PayloadBase64 != base64.StdEncoding.EncodeToString(blob) {
		t.Fatalf("binary payload: %+v", msgs[5])
	}
}

func TestCLIConsumeSubscriptionTypes(t *testing.T) {
	s := startServer(t, server.Options{})
	for _, typ := range []string{"exclusive", "shared", "failover", "key_shared"} {
		t.Run(typ, func(t *testing.T) {
			topic := uniqueTopic(t)
			runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(), "-m", "x", "-m", "y", "-k", "key").ok(t)
			out := runCLI(t, "", "consume", topic, "--service-url", s.BrokerURL(), "-s", "s-"+typ,
				"-t", typ, "--position", "earliest", "-n", "2").ok(t)
			if out != "x\ny\n" {
				t.Fatalf("%s: %q", typ, out)
			}
		})
	}
}

// TestCLIConsumeForeverUntilInterrupted: -n 0 consumes until SIGINT, then
// exits 0 with the count.
func TestCLIConsumeForeverUntilInterrupted(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := uniqueTopic(t)
	runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(), "-m", "first", "-m", "second").ok(t)
	cmd := cliCommand(context.Background(), "consume", topic, "--service-url", s.BrokerURL(), "-s", "s", "-n", "0", "--position", "earliest")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	for _, want := range []string{"first", "second"} {
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("got %q (%v), want %q\nstderr: %s", lines.Text(), lines.Err(), want, stderr.String())
		}
	}
	// Still running: a message sent now arrives too.
	runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(), "-m", "third").ok(t)
	if !lines.Scan() || lines.Text() != "third" {
		t.Fatalf("got %q, want third", lines.Text())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for lines.Scan() {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v\nstderr: %s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("consume did not exit after SIGINT")
	}
	if !strings.Contains(stderr.String(), "consumed 3 messages") {
		t.Fatalf("stderr: %q", stderr.String())
	}
}

func TestCLIProduceProgressAndRate(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := uniqueTopic(t)
	start := time.Now()
	r := runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(), "-m", "tick",
		"--num-produce", "30", "--rate", "30", "--progress", "--progress-interval", "200ms")
	r.ok(t)
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Fatalf("30 messages at 30 msg/s took only %v", d)
	}
	if !regexp.MustCompile(`(?m)^produced \d+ messages \(\d+\.\d msg/s\)$`).MatchString(r.stderr) {
		t.Fatalf("no progress line on stderr: %q", r.stderr)
	}
	// Without --progress and with stderr not a terminal: no progress line.
	r = runCLI(t, "", "consume", topic, "--service-url", s.BrokerURL(), "-s", "s", "-p", "earliest", "-n", "30", "--progress-interval", "1ms")
	r.ok(t)
	if strings.Contains(r.stderr, "msg/s") {
		t.Fatalf("progress without --progress to a pipe: %q", r.stderr)
	}
}

func TestCLIProduceConsumeErrors(t *testing.T) {
	s := startServer(t, server.Options{})
	r := runCLI(t, "", "produce", "persistent://no-such-tenant/ns/t", "--service-url", s.BrokerURL(), "-m", "x", "--timeout", "10s")
	r.fails(t, "")
	r = runCLI(t, "", "produce", "t", "--service-url", fmt.Sprintf("pulsar://127.0.0.1:%d", freePort(t)), "-m", "x", "--timeout", "2s")
	r.fails(t, "")
	r = runCLI(t, "", "consume", "t", "--service-url", s.BrokerURL())
	if r.code == 0 || !strings.Contains(r.stderr, "subscription-name") {
		t.Fatalf("consume without -s: %d %q", r.code, r.stderr)
	}
	runCLI(t, "", "produce", "t", "--service-url", s.BrokerURL()).fails(t, "messages")
	runCLI(t, "", "consume", "t", "--service-url", s.BrokerURL(), "-s", "s", "-t", "broadcast").fails(t, "subscription type")

	// A second exclusive consumer is refused by the broker.
	topic := uniqueTopic(t)
	client := newClient(t, s.BrokerURL())
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runCLI(t, "", "consume", topic, "--service-url", s.BrokerURL(), "-s", "busy", "--timeout", "10s").fails(t, "subscribe")
}

func TestCLIConsumeEnvServiceURL(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := uniqueTopic(t)
	for _, args := range [][]string{
		{"produce", topic, "-m", "via-env"},
		{"consume", topic, "-s", "s", "-p", "earliest"},
	} {
		cmd := cliCommand(context.Background(), args...)
		cmd.Env = append(cmd.Env, "MB_SERVICE_URL="+s.BrokerURL())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if args[0] == "consume" && string(out) != "via-env\n" {
			t.Fatalf("consume: %q", out)
		}
	}
}
