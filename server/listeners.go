package server

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/cluster"
)

// parseListeners reads --advertised-listeners, Pulsar's advertisedListeners
// format: comma-separated name:url items, each url pulsar://host:port or
// pulsar+ssl://host:port, at most one of each scheme per name.
func parseListeners(s string) (map[string]broker.Listener, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	out := map[string]broker.Listener{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		name, raw, ok := strings.Cut(item, ":")
		if !ok || name == "" || strings.ContainsAny(name, "/ ") {
			return nil, fmt.Errorf("advertised listener %q: want name:pulsar://host:port or name:pulsar+ssl://host:port", item)
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("advertised listener %q: %q is not a pulsar://host:port or pulsar+ssl://host:port URL", item, raw)
		}
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
			return nil, fmt.Errorf("advertised listener %q: %q needs a host and a port", item, raw)
		}
		l := out[name]
		addr := u.Scheme + "://" + u.Host
		switch u.Scheme {
		case "pulsar":
			if l.PulsarURL != "" {
				return nil, fmt.Errorf("advertised listener %q has two pulsar:// URLs", name)
			}
			l.PulsarURL = addr
		case "pulsar+ssl":
			if l.PulsarTLSURL != "" {
				return nil, fmt.Errorf("advertised listener %q has two pulsar+ssl:// URLs", name)
			}
			l.PulsarTLSURL = addr
		default:
			return nil, fmt.Errorf("advertised listener %q: scheme %q (want pulsar or pulsar+ssl)", item, u.Scheme)
		}
		out[name] = l
	}
	return out, nil
}

// clusterListeners is ls as the cluster registry publishes them.
func clusterListeners(ls map[string]broker.Listener) map[string]cluster.Listener {
	if len(ls) == 0 {
		return nil
	}
	out := make(map[string]cluster.Listener, len(ls))
	for name, l := range ls {
		out[name] = cluster.Listener(l)
	}
	return out
}
