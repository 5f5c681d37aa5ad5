// procfn is a process function for the tests: it reads its settings from
// the environment mb gives it, consumes its inputs with the Pulsar Go
// client and publishes each payload upper-cased to its output. The
// payload "crash" makes it exit once, so the test sees the supervisor
// restart it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/apache/pulsar-client-go/pulsar"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "procfn:", err)
		os.Exit(1)
	}
}

func run() error {
	var ucfg struct {
		PidFile string `json:"pidFile"`
	}
	if err := json.Unmarshal([]byte(os.Getenv("MB_FUNCTION_USER_CONFIG")), &ucfg); err != nil {
		return fmt.Errorf("user config: %w", err)
	}
	if ucfg.PidFile != "" {
		if err := os.WriteFile(ucfg.PidFile, []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
			return err
		}
	}
	conf, err := os.ReadFile(os.Getenv("MB_CLIENT_CONFIG"))
	if err != nil {
		return err
	}
	fmt.Printf("procfn started instance=%s conf-has-broker=%v\n", os.Getenv("MB_FUNCTION_INSTANCE_ID"),
		bytes.Contains(conf, []byte("brokerServiceUrl="+os.Getenv("MB_SERVICE_URL"))))
	opts := pulsar.ClientOptions{URL: os.Getenv("MB_SERVICE_URL")}
	if t := os.Getenv("MB_AUTH_TOKEN"); t != "" {
		opts.Authentication = pulsar.NewAuthenticationToken(t)
	}
	client, err := pulsar.NewClient(opts)
	if err != nil {
		return err
	}
	defer client.Close()
	copts := pulsar.ConsumerOptions{Topics: strings.Split(os.Getenv("MB_FUNCTION_INPUTS"), ","),
		SubscriptionName: os.Getenv("MB_FUNCTION_SUBSCRIPTION"), Type: pulsar.Shared}
	if os.Getenv("MB_FUNCTION_SUBSCRIPTION_POSITION") == "Earliest" {
		copts.SubscriptionInitialPosition = pulsar.SubscriptionPositionEarliest
	}
	consumer, err := client.Subscribe(copts)
	if err != nil {
		return err
	}
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: os.Getenv("MB_FUNCTION_OUTPUT")})
	if err != nil {
		return err
	}
	defer producer.Close()
	ctx := context.Background()
	for {
		msg, err := consumer.Receive(ctx)
		if err != nil {
			return err
		}
		if string(msg.Payload()) == "crash" {
			// Once: the marker in HOME (the instance's directory, kept
			// across restarts) says it already crashed on it.
			marker := os.Getenv("HOME") + "/crashed"
			if _, err := os.Stat(marker); err != nil {
				os.WriteFile(marker, nil, 0o644)
				fmt.Fprintln(os.Stderr, "procfn: crashing on request")
				os.Exit(3)
			}
			consumer.Ack(msg)
			continue
		}
		if _, err := producer.Send(ctx, &pulsar.ProducerMessage{Key: msg.Key(), Payload: bytes.ToUpper(msg.Payload())}); err != nil {
			return err
		}
		if err := consumer.Ack(msg); err != nil {
			return err
		}
	}
}
