// Package goawstest runs goaws v0.5.4 (an SQS/SNS emulator) for tests.
// `make testdeps` installs it as $(go env GOPATH)/lib/goaws-v0.5.4/cmd
// (the module's binary is named cmd); MB_GOAWS overrides the path.
package goawstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Version is the goaws release the tests use.
const Version = "v0.5.4"

// Server is a running goaws.
type Server struct {
	Endpoint string
	Region   string
	Account  string
}

// Binary locates goaws.
func Binary() (string, error) {
	if p := os.Getenv("MB_GOAWS"); p != "" {
		return p, nil
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", err
	}
	p := filepath.Join(strings.TrimSpace(string(gopath)), "lib", "goaws-"+Version, "cmd")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("goaws %s is not installed at %s: run make testdeps (GOBIN=%s go install github.com/Admiral-Piett/goaws/app/cmd@%s)",
			Version, p, filepath.Dir(p), Version)
	}
	return p, nil
}

// Start runs goaws with the queues and topics given; topics maps a topic
// name to the queues subscribed to it with raw delivery.
func Start(t *testing.T, queues []string, topics map[string][]string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "Local:\n  Host: 127.0.0.1\n  Port: %d\n  Region: us-east-1\n  AccountId: \"100010001000\"\n  LogToFile: false\n", port)
	b.WriteString("  QueueAttributeDefaults:\n    VisibilityTimeout: 30\n    ReceiveMessageWaitTimeSeconds: 0\n  Queues:\n")
	for _, q := range queues {
		fmt.Fprintf(&b, "    - Name: %s\n", q)
	}
	b.WriteString("  Topics:\n")
	for tn, subs := range topics {
		fmt.Fprintf(&b, "    - Name: %s\n      Subscriptions:\n", tn)
		for _, q := range subs {
			fmt.Fprintf(&b, "        - QueueName: %s\n          Raw: true\n", q)
		}
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "goaws.yaml")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgPath, "Local")
	cmd.Dir = dir
	logf, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("goaws did not listen on %s: %s", addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &Server{Endpoint: "http://" + addr, Region: "us-east-1", Account: "100010001000"}
}

// QueueURL is a queue's URL.
func (s *Server) QueueURL(name string) string { return s.Endpoint + "/" + s.Account + "/" + name }

// TopicArn is a topic's ARN.
func (s *Server) TopicArn(name string) string {
	return "arn:aws:sns:" + s.Region + ":" + s.Account + ":" + name
}
