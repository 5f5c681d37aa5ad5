package replication

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Finding the remote broker that serves a topic. A remote cluster may be
// several brokers (cluster mode), each topic served by its bundle's owner;
// its registration names any of them (a multi-host URL,
// pulsar://h1:6650,h2:6650, names several). As Pulsar's client does, the
// link connects to one of them, sends LOOKUP and follows the answer:
//
//   - Connect with proxy_through_service_url (a standalone broker): the
//     producer is created on this connection.
//   - Connect with another broker's URL: the link connects there and creates
//     the producer (no second lookup).
//   - Redirect: the link connects to the named broker and looks up again,
//     with the answer's authoritative flag (that broker then takes an
//     unowned bundle instead of choosing again).
//   - Failed: the attempt fails with the remote's error (retried after the
//     backoff, as any failure).
//
// The URL followed is the answer's pulsar+ssl:// one when the link uses TLS
// (its certificate is checked against the new host name), else its
// pulsar:// one. After maxLookupHops redirects the attempt fails.

const maxLookupHops = 8

// addrs are the brokers ep names (host:port each).
func (ep Endpoint) addrs() []string {
	if len(ep.Addrs) > 0 {
		return ep.Addrs
	}
	return []string{ep.Addr}
}

// connectOwner returns an authenticated connection to the remote broker
// that serves topic.
func connectOwner(ctx context.Context, ep Endpoint, topic string, window int) (*link, error) {
	addrs := ep.addrs()
	var l *link
	var err error
	// Start at a random broker, then try the others: a dead broker in the
	// registration costs one refused dial, not the link.
	first := rand.IntN(len(addrs))
	for i := range addrs {
		addr := addrs[(first+i)%len(addrs)]
		host, _, _ := net.SplitHostPort(addr)
		l, err = connect(ctx, ep, addr, tlsFor(ep.TLS, host), window)
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	authoritative := false
	for hop := 0; ; hop++ {
		ans, err := l.lookup(topic, authoritative)
		if err != nil {
			l.nc.Close()
			return nil, err
		}
		connectAnswer := ans.GetResponse() == pb.CommandLookupTopicResponse_Connect
		target := ans.GetBrokerServiceUrl()
		if l.tlsCfg != nil {
			target = ans.GetBrokerServiceUrlTls()
		}
		if connectAnswer && (ans.GetProxyThroughServiceUrl() || target == "") {
			return l, nil
		}
		if target == "" {
			l.nc.Close()
			return nil, fmt.Errorf("lookup of %s on %s: redirect without a %s URL", topic, l.addr, map[bool]string{true: "pulsar+ssl://", false: "pulsar://"}[l.tlsCfg != nil])
		}
		addr, host, err := brokerAddr(target)
		if err != nil {
			l.nc.Close()
			return nil, fmt.Errorf("lookup of %s on %s: %w", topic, l.addr, err)
		}
		if connectAnswer && addr == l.addr {
			return l, nil
		}
		if hop >= maxLookupHops {
			l.nc.Close()
			return nil, fmt.Errorf("lookup of %s: more than %d redirects (last to %s)", topic, maxLookupHops, target)
		}
		l.nc.Close()
		if l, err = connect(ctx, ep, addr, tlsFor(ep.TLS, host), window); err != nil {
			return nil, fmt.Errorf("the remote's lookup of %s named %s: %w", topic, target, err)
		}
		if connectAnswer {
			return l, nil
		}
		authoritative = ans.GetAuthoritative()
	}
}

// lookup sends LOOKUP for topic and reads the answer (before the read loop
// runs; the connection's deadline bounds it).
func (l *link) lookup(topic string, authoritative bool) (*pb.CommandLookupTopicResponse, error) {
	l.reqID++
	id := l.reqID
	if err := l.write(&pb.BaseCommand{Type: pb.BaseCommand_LOOKUP.Enum(), LookupTopic: &pb.CommandLookupTopic{
		Topic: proto.String(topic), RequestId: proto.Uint64(id), Authoritative: proto.Bool(authoritative)}}, nil); err != nil {
		return nil, fmt.Errorf("send LOOKUP: %w", err)
	}
	for {
		cmd, err := l.next()
		if err != nil {
			return nil, fmt.Errorf("await LOOKUP_RESPONSE from %s: %w", l.addr, err)
		}
		switch cmd.GetType() {
		case pb.BaseCommand_LOOKUP_RESPONSE:
			r := cmd.GetLookupTopicResponse()
			if r.GetRequestId() != id {
				continue
			}
			if r.GetResponse() == pb.CommandLookupTopicResponse_Failed {
				return nil, fmt.Errorf("lookup of %s refused by %s: %v: %s", topic, l.addr, r.GetError(), r.GetMessage())
			}
			return r, nil
		case pb.BaseCommand_ERROR:
			return nil, fmt.Errorf("lookup of %s refused by %s: %v: %s", topic, l.addr, cmd.GetError().GetError(), cmd.GetError().GetMessage())
		case pb.BaseCommand_PING:
			l.write(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}}, nil)
		}
	}
}

// brokerAddr reads the host:port (default port by scheme) and host name of
// a lookup answer's pulsar:// or pulsar+ssl:// URL.
func brokerAddr(raw string) (addr, host string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "pulsar" && u.Scheme != "pulsar+ssl") {
		return "", "", fmt.Errorf("invalid broker URL %q in the lookup answer", raw)
	}
	addr = u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), brokerPorts[u.Scheme])
	}
	return addr, u.Hostname(), nil
}

// brokerPorts are the ports of broker URLs without one, by scheme.
var brokerPorts = map[string]string{"pulsar": "6650", "pulsar+ssl": "6651"}

// tlsFor is base with the server name host (nil: a plain connection).
func tlsFor(base *tls.Config, host string) *tls.Config {
	if base == nil {
		return nil
	}
	c := base.Clone()
	c.ServerName = host
	return c
}
