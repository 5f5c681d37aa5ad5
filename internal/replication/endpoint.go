package replication

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/messagebus/messagebus/internal/meta"
)

// Endpoint is where and how a replicator connects to a remote cluster.
type Endpoint struct {
	// Addr is host:port of the remote broker.
	Addr string
	// TLS is set for pulsar+ssl.
	TLS *tls.Config
	// AuthMethod and AuthData go into CONNECT ("token" and the JWT, or
	// empty for none).
	AuthMethod string
	AuthData   []byte
	// ServiceURL is the remote's admin API (https when brokerClientTlsEnabled
	// and it has one), used to create partitioned topics; HTTPTLS its TLS.
	ServiceURL string
	HTTPTLS    *tls.Config
}

// EndpointOf derives the endpoint of a registered cluster: its TLS broker
// URL when brokerClientTlsEnabled (or when it has no plaintext one), else
// its broker URL; credentials from authenticationPlugin and
// authenticationParameters (token plugins: "token:<jwt>", "file:<path>",
// {"token":"<jwt>"} or the bare JWT).
func EndpointOf(name string, c meta.ClusterData) (Endpoint, error) {
	raw := c.BrokerServiceURL
	if c.BrokerClientTLSEnabled || raw == "" {
		raw = c.BrokerServiceURLTls
	}
	if raw == "" {
		return Endpoint{}, fmt.Errorf("cluster %s has no brokerServiceUrl", name)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Endpoint{}, fmt.Errorf("cluster %s: invalid broker URL %q", name, raw)
	}
	var ep Endpoint
	switch u.Scheme {
	case "pulsar":
	case "pulsar+ssl":
		ep.TLS = &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: c.TLSAllowInsecureConnection} //nolint:gosec // operator's choice
		if c.BrokerClientTrustCertsFilePath != "" {
			pem, err := os.ReadFile(c.BrokerClientTrustCertsFilePath)
			if err != nil {
				return Endpoint{}, fmt.Errorf("cluster %s: trust certificates: %w", name, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return Endpoint{}, fmt.Errorf("cluster %s: no certificate in %s", name, c.BrokerClientTrustCertsFilePath)
			}
			ep.TLS.RootCAs = pool
		}
	default:
		return Endpoint{}, fmt.Errorf("cluster %s: broker URL %q is not pulsar:// or pulsar+ssl://", name, raw)
	}
	ep.Addr = u.Host
	if u.Port() == "" {
		ep.Addr += map[string]string{"pulsar": ":6650", "pulsar+ssl": ":6651"}[u.Scheme]
	}
	ep.ServiceURL = c.ServiceURL
	if (c.BrokerClientTLSEnabled || ep.ServiceURL == "") && c.ServiceURLTls != "" {
		ep.ServiceURL = c.ServiceURLTls
	}
	ep.HTTPTLS = httpTLS(ep.TLS)
	ep.AuthMethod, ep.AuthData, err = credentials(c.AuthenticationPlugin, c.AuthenticationParameters)
	if err != nil {
		return Endpoint{}, fmt.Errorf("cluster %s: %w", name, err)
	}
	return ep, nil
}

// credentials turns Pulsar's authentication plugin and parameters into
// CONNECT's method and data. Only tokens are supported.
func credentials(plugin, params string) (string, []byte, error) {
	p := strings.ToLower(plugin)
	switch {
	case plugin == "" && params == "":
		return "", nil, nil
	case plugin == "" || p == "token" || strings.HasSuffix(p, "authenticationtoken"):
	default:
		return "", nil, fmt.Errorf("authentication plugin %q is not supported for replication (use a token)", plugin)
	}
	params = strings.TrimSpace(params)
	var tok string
	switch {
	case strings.HasPrefix(params, "{"):
		var j struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal([]byte(params), &j); err != nil {
			return "", nil, fmt.Errorf("authenticationParameters: %w", err)
		}
		tok = j.Token
	case strings.HasPrefix(params, "token:"):
		tok = strings.TrimPrefix(params, "token:")
	case strings.HasPrefix(params, "file:"):
		b, err := readTokenFile(strings.TrimPrefix(strings.TrimPrefix(params, "file:"), "//"))
		if err != nil {
			return "", nil, fmt.Errorf("authenticationParameters: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	default:
		tok = params
	}
	if tok == "" {
		return "", nil, errors.New("authenticationParameters hold no token")
	}
	return "token", []byte(tok), nil
}

// maxTokenFile bounds a token file: a token is a few KiB at most.
const maxTokenFile = 64 << 10

func readTokenFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxTokenFile {
		return nil, fmt.Errorf("token file %s is larger than %d bytes", path, maxTokenFile)
	}
	return b, nil
}
