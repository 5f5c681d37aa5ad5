package test

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/messagebus/messagebus/server"
)

// TestLookupAnswersAdvertisedAddress: HTTP lookups and the brokers
// endpoints give out --advertised-address with the listeners' ports, as
// Pulsar's brokerServiceUrl and webServiceUrl, not the listen address; so
// does the broker's own cluster record.
func TestLookupAnswersAdvertisedAddress(t *testing.T) {
	opts := server.Options{DataDir: t.TempDir(), BrokerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		AdvertisedAddress: "localhost", Logger: quietLogger()}
	if metadataStore != "" {
		opts.Metadata.Store, opts.Metadata.Prefix = metadataStore, metadataPrefix(opts.DataDir)
	}
	s, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	waitHealthy(t, s.WebURL(), nil)
	port := func(u string) string {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		return p.Port()
	}
	web := "localhost:" + port(s.WebURL())
	broker := "pulsar://" + net.JoinHostPort("localhost", port(s.BrokerURL()))

	code, body := httpDo(t, "GET", s.WebURL()+"/lookup/v2/topic/persistent/public/default/adv", "")
	var lookup map[string]string
	if code != 200 || json.Unmarshal([]byte(body), &lookup) != nil ||
		lookup["brokerUrl"] != broker || lookup["httpUrl"] != "http://"+web {
		t.Fatalf("lookup: %d %s, want brokerUrl %s httpUrl http://%s", code, body, broker, web)
	}
	if code, body := httpDo(t, "GET", s.WebURL()+"/admin/v2/brokers", ""); code != 200 || strings.TrimSpace(body) != `["`+web+`"]` {
		t.Fatalf("brokers: %d %q, want [%q]", code, body, web)
	}
	var cluster map[string]string
	if code, body := httpDo(t, "GET", s.WebURL()+"/admin/v2/clusters/standalone", ""); code != 200 ||
		json.Unmarshal([]byte(body), &cluster) != nil || cluster["serviceUrl"] != "http://"+web || cluster["brokerServiceUrl"] != broker {
		t.Fatalf("cluster: %d %s, want serviceUrl http://%s brokerServiceUrl %s", code, body, web, broker)
	}
}
