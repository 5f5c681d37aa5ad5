package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

// forwarder accepts on a loopback port and copies each connection to the
// address target returns, counting connections: a listener's address that
// is not the broker's own.
type forwarder struct {
	ln     net.Listener
	target atomic.Value // string
	conns  atomic.Int64
	wg     sync.WaitGroup
}

func startForwarder(t *testing.T) *forwarder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			b, err := net.Dial("tcp", f.target.Load().(string))
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(b, c); b.Close() }()
			go func() { io.Copy(c, b); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

// TestAdvertisedListeners: a client that looks up with a listener name
// (the Go client's ListenerName) is sent to that listener's address; a
// name the broker does not advertise fails the lookup with Pulsar's words;
// clients without a name keep the default address.
func TestAdvertisedListeners(t *testing.T) {
	fwd := startForwarder(t)
	s := startServer(t, server.Options{AdvertisedListeners: "ext:pulsar://" + fwd.ln.Addr().String()})
	u, err := url.Parse(s.BrokerURL())
	if err != nil {
		t.Fatal(err)
	}
	fwd.target.Store(u.Host)
	topic := uniqueTopic(t)

	ext, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.BrokerURL(), ListenerName: "ext", OperationTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	p, err := ext.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("via ext")}); err != nil {
		t.Fatal(err)
	}
	if fwd.conns.Load() == 0 {
		t.Fatal("the producer did not connect through the ext listener's address")
	}

	// Without a listener name: the default address, as before.
	before := fwd.conns.Load()
	c := newClient(t, s.BrokerURL())
	cons := subscribeEarliest(t, c, topic)
	if m := receiveN(t, cons, 1, 10*time.Second); string(m[0].Payload()) != "via ext" {
		t.Fatalf("got %q", m[0].Payload())
	}
	if n := fwd.conns.Load(); n != before {
		t.Fatalf("a client without a listener name connected to the ext listener (%d connections)", n-before)
	}

	bad, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.BrokerURL(), ListenerName: "nope", OperationTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	// The Go client reports the code only (the message is "the broker do
	// not have nope listener").
	if _, err := bad.CreateProducer(pulsar.ProducerOptions{Topic: topic}); err == nil || !strings.Contains(err.Error(), "ServiceNotReady") {
		t.Fatalf("unknown listener: %v", err)
	}

	// HTTP lookups: listenerName (query) or X-Pulsar-ListenerName (header).
	lookup := s.WebURL() + "/lookup/v2/topic/" + strings.Replace(topic, "://", "/", 1)
	extURL := "pulsar://" + fwd.ln.Addr().String()
	for _, c := range []struct{ query, header, want string }{
		{"", "", s.BrokerURL()}, {"?listenerName=ext", "", extURL}, {"", "ext", extURL}, {"?listenerName=ext", "nope", extURL},
	} {
		if got := httpLookup(t, lookup+c.query, c.header, http.StatusOK); got["brokerUrl"] != c.want || got["httpUrl"] != s.WebURL() {
			t.Errorf("lookup%s (header %q): %v, want brokerUrl %s", c.query, c.header, got, c.want)
		}
	}
	if got := httpLookup(t, lookup+"?listenerName=nope", "", http.StatusInternalServerError); got["reason"] != "the broker do not have nope listener" {
		t.Errorf("unknown listener over HTTP: %v", got)
	}
}

// httpLookup GETs an HTTP lookup with an optional listener header and
// returns its JSON body, failing unless the status is want.
func httpLookup(t *testing.T, u, listener string, want int) map[string]string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if listener != "" {
		req.Header.Set("X-Pulsar-ListenerName", listener)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]string{}
	if resp.StatusCode != want || jsonUnmarshal(body, &out) != nil {
		t.Fatalf("GET %s: %s %s, want %d", u, resp.Status, body, want)
	}
	return out
}

// TestClusterAdvertisedListeners: on a cluster the lookup answers with the
// owner's listener of that name (each broker publishes its listeners with
// its owner keys), so clients reach every owner through its listener.
func TestClusterAdvertisedListeners(t *testing.T) {
	c := startCluster(t, 0)
	fwds := []*forwarder{startForwarder(t), startForwarder(t)}
	for i, f := range fwds {
		bp, hp := freePort(t), freePort(t)
		f.target.Store(fmt.Sprintf("127.0.0.1:%d", bp))
		c.brokers = append(c.brokers, c.launchAt(i, bp, hp, []string{"--advertised-listeners", "ext:pulsar://" + f.ln.Addr().String()}))
	}
	for _, p := range c.brokers {
		waitHealthy(t, p.webURL, p.exited)
	}
	cl, err := pulsar.NewClient(pulsar.ClientOptions{URL: c.brokers[0].brokerURL, ListenerName: "ext", OperationTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Topics until both brokers own one; each is written through the
	// listener of its owner.
	owners := map[int]bool{}
	for i := 0; len(owners) < 2; i++ {
		if i == 40 {
			t.Fatalf("40 topics, owners %v", owners)
		}
		topic := fmt.Sprintf("%s-%d", uniqueTopic(t), i)
		p, err := cl.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		p.Close()
		owners[c.owner(topic)] = true
	}
	for i, f := range fwds {
		if f.conns.Load() == 0 {
			t.Fatalf("no connection through broker b%d's ext listener", i)
		}
	}
	// An HTTP lookup at either broker answers with the owner's listener
	// (the other broker answers from the owner's record, or redirects).
	topic := uniqueTopic(t) + "-http"
	p, err := cl.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	want := "pulsar://" + fwds[c.owner(topic)].ln.Addr().String()
	for _, b := range c.brokers {
		if got := httpLookup(t, b.webURL+"/lookup/v2/topic/"+strings.Replace(topic, "://", "/", 1)+"?listenerName=ext", "", http.StatusOK); got["brokerUrl"] != want {
			t.Errorf("HTTP lookup at %s: %v, want brokerUrl %s", b.webURL, got, want)
		}
	}
}
