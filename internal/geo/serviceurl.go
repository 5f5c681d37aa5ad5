package geo

import (
	"fmt"
	"net"
	"strings"
)

// SplitServiceURL reads a cluster's service URL, which may name several
// brokers as Pulsar's do (pulsar://h1:6650,h2:6650, http://h1:8080,h2:8080):
// its scheme and its hosts (host:port each, the scheme's port of
// defaultPorts added where a host has none). A path after the hosts is
// ignored.
func SplitServiceURL(raw string, defaultPorts map[string]string) (scheme string, hosts []string, err error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || scheme == "" {
		return "", nil, fmt.Errorf("invalid URL %q: want scheme://host:port", raw)
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	for _, h := range strings.Split(rest, ",") {
		if h == "" || strings.ContainsAny(h, " @") {
			return "", nil, fmt.Errorf("invalid URL %q: empty or malformed host %q", raw, h)
		}
		if host, port, err := net.SplitHostPort(h); err == nil {
			if host == "" || port == "" {
				return "", nil, fmt.Errorf("invalid URL %q: host %q", raw, h)
			}
		} else {
			// No port: a name, or an IPv6 address in brackets.
			name := h
			if strings.HasPrefix(h, "[") {
				if !strings.HasSuffix(h, "]") {
					return "", nil, fmt.Errorf("invalid URL %q: host %q", raw, h)
				}
				name = h[1 : len(h)-1]
			} else if strings.Contains(h, ":") {
				return "", nil, fmt.Errorf("invalid URL %q: host %q", raw, h)
			}
			if name == "" || strings.ContainsAny(name, "[]") {
				return "", nil, fmt.Errorf("invalid URL %q: host %q", raw, h)
			}
			port, ok := defaultPorts[scheme]
			if !ok {
				return "", nil, fmt.Errorf("invalid URL %q: host %q has no port", raw, h)
			}
			h = net.JoinHostPort(name, port)
		}
		hosts = append(hosts, h)
	}
	return scheme, hosts, nil
}
