package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/wire/pb"
	"github.com/messagebus/messagebus/server"
	"google.golang.org/protobuf/proto"
)

// TestConfigSources checks that flags, MB_* environment variables and the
// config file are all read, with flags over environment over file.
func TestConfigSources(t *testing.T) {
	dir := t.TempDir()
	filePort, envPort, flagPort := freePort(t), freePort(t), freePort(t)
	cfg := filepath.Join(dir, "mb.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("http-addr: 127.0.0.1:%d\nbroker-addr: 127.0.0.1:1\nmax-message-size: 2048\n", filePort)), 0o644)
	cmd := exec.Command(mbBinary, "standalone", "--config", cfg, "--data-dir", filepath.Join(dir, "data"),
		"--broker-addr", fmt.Sprintf("127.0.0.1:%d", flagPort), "--log-level", "warn")
	cmd.Env = append(os.Environ(), fmt.Sprintf("MB_BROKER_ADDR=127.0.0.1:%d", envPort), "MB_ADVERTISED_ADDRESS=127.0.0.1")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); <-exited }()
	waitHealthy(t, fmt.Sprintf("http://127.0.0.1:%d", filePort), exited) // http-addr from the file

	// broker-addr from the flag, and max-message-size from the file reaches
	// clients through CONNECTED. Checked on the wire: pulsar-client-go
	// v0.19.0 can crash on a receipt after failing an oversize send locally.
	c := dialRaw(t, fmt.Sprintf("pulsar://127.0.0.1:%d", flagPort))
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_CONNECT.Enum(), Connect: &pb.CommandConnect{
		ClientVersion: proto.String("raw-test"), ProtocolVersion: proto.Int32(20)}})
	if cmd := c.read(); cmd.GetType() != pb.BaseCommand_CONNECTED || cmd.GetConnected().GetMaxMessageSize() != 2048 {
		t.Fatalf("CONNECTED from the flag's address with max-message-size 2048 from the file: got %v\n%s", cmd, stderr.String())
	}
}

func TestStandaloneRejectsBadFlags(t *testing.T) {
	out, err := exec.Command(mbBinary, "standalone", "--log-format", "xml").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "invalid --log-format") {
		t.Fatalf("bad --log-format: %v %s", err, out)
	}
}

// TestKeepAliveDropsSilentConnections: the broker pings, and drops a client
// that answers nothing for two intervals.
func TestKeepAliveDropsSilentConnections(t *testing.T) {
	s := startServer(t, server.Options{KeepAliveInterval: 200 * time.Millisecond})
	c := dialRaw(t, s.BrokerURL())
	c.connect()
	f, err := c.r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != pb.BaseCommand_PING {
		t.Fatalf("expected PING from broker, got %v", f.Type)
	}
	start := time.Now()
	c.expectClosed()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("silent connection dropped only after %v", d)
	}
}
