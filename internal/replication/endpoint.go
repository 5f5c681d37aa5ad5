package replication

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/meta"
)

// Endpoint is where and how a replicator connects to a remote cluster.
type Endpoint struct {
	// Addr is host:port of the remote broker (the first of Addrs).
	Addr string
	// Addrs are the brokers the registration names (host:port each); the
	// link connects to any of them and follows its lookup answer.
	Addrs []string
	// TLS is set for pulsar+ssl.
	TLS *tls.Config
	// AuthMethod and AuthData go into CONNECT: "token" and the JWT,
	// "basic" and "user:password", "tls" and nothing (the client
	// certificate in TLS), or empty for none.
	AuthMethod string
	AuthData   []byte
	// ServiceURL is the remote's admin API (https when brokerClientTlsEnabled
	// and it has one), used to create partitioned topics and to move
	// replicated subscriptions; HTTPTLS its TLS.
	ServiceURL string
	HTTPTLS    *tls.Config
	// httpAuth is the Authorization header for ServiceURL ("" for none).
	httpAuth string
	// config is what the endpoint was derived from: when it changes, the
	// link reconnects with the new one.
	config string
}

// authorize sets the admin API credentials on req.
func (ep Endpoint) authorize(req *http.Request) {
	if ep.httpAuth != "" {
		req.Header.Set("Authorization", ep.httpAuth)
	}
}

// httpClient is a client for ServiceURL.
func (ep Endpoint) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: ep.HTTPTLS}}
}

// EndpointOf derives the endpoint of a registered cluster: its TLS broker
// URL when brokerClientTlsEnabled (or when it has no plaintext one), else
// its broker URL; server certificates checked against
// brokerClientTrustCertsFilePath (else the system roots) unless
// tlsAllowInsecureConnection; credentials from authenticationPlugin and
// authenticationParameters (see credentials), and a client certificate from
// brokerClientCertificateFilePath and brokerClientKeyFilePath.
func EndpointOf(name string, c meta.ClusterData) (Endpoint, error) {
	raw := c.BrokerServiceURL
	if c.BrokerClientTLSEnabled || raw == "" {
		raw = c.BrokerServiceURLTls
	}
	if raw == "" {
		return Endpoint{}, fmt.Errorf("cluster %s has no brokerServiceUrl", name)
	}
	// A multi-host URL (pulsar://h1:6650,h2:6650) names several brokers of
	// the remote cluster: the link starts at any of them (lookup.go).
	scheme, hosts, err := geo.SplitServiceURL(raw, brokerPorts)
	if err != nil {
		return Endpoint{}, fmt.Errorf("cluster %s: invalid broker URL %q: %w", name, raw, err)
	}
	if scheme != "pulsar" && scheme != "pulsar+ssl" {
		return Endpoint{}, fmt.Errorf("cluster %s: broker URL %q is not pulsar:// or pulsar+ssl://", name, raw)
	}
	cfgJSON, _ := json.Marshal(c)
	ep := Endpoint{Addr: hosts[0], Addrs: hosts, config: string(cfgJSON)}
	ep.ServiceURL = c.ServiceURL
	if (c.BrokerClientTLSEnabled || ep.ServiceURL == "") && c.ServiceURLTls != "" {
		ep.ServiceURL = c.ServiceURLTls
	}
	cred, err := credentials(c.AuthenticationPlugin, c.AuthenticationParameters)
	if err != nil {
		return Endpoint{}, fmt.Errorf("cluster %s: %w", name, err)
	}
	ep.AuthMethod, ep.AuthData, ep.httpAuth = cred.method, cred.data, cred.httpAuth
	certFile, keyFile := c.BrokerClientCertificateFilePath, c.BrokerClientKeyFilePath
	if cred.certFile != "" {
		certFile, keyFile = cred.certFile, cred.keyFile
	}
	if (certFile == "") != (keyFile == "") {
		return Endpoint{}, fmt.Errorf("cluster %s: a client certificate needs both a certificate and a key file", name)
	}
	brokerTLS := scheme == "pulsar+ssl"
	httpsAdmin := strings.HasPrefix(ep.ServiceURL, "https://")
	if cred.method == "tls" && !brokerTLS {
		return Endpoint{}, fmt.Errorf("cluster %s: TLS authentication needs a pulsar+ssl:// broker URL (brokerServiceUrlTls and brokerClientTlsEnabled)", name)
	}
	if !brokerTLS && !httpsAdmin {
		return ep, nil
	}
	base := &tls.Config{InsecureSkipVerify: c.TLSAllowInsecureConnection} //nolint:gosec // the operator's choice, as in Pulsar
	if c.BrokerClientTrustCertsFilePath != "" {
		pem, err := os.ReadFile(c.BrokerClientTrustCertsFilePath)
		if err != nil {
			return Endpoint{}, fmt.Errorf("cluster %s: trust certificates: %w", name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return Endpoint{}, fmt.Errorf("cluster %s: no certificate in %s", name, c.BrokerClientTrustCertsFilePath)
		}
		base.RootCAs = pool
	}
	if certFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return Endpoint{}, fmt.Errorf("cluster %s: client certificate: %w", name, err)
		}
		base.Certificates = []tls.Certificate{kp}
	}
	if brokerTLS {
		ep.TLS = base.Clone()
		ep.TLS.ServerName, _, _ = net.SplitHostPort(ep.Addr)
	}
	if httpsAdmin {
		ep.HTTPTLS = base.Clone() // the server name comes from the URL
	}
	return ep, nil
}

// linkCredentials are a link's credentials, from the cluster's
// authentication plugin and parameters.
type linkCredentials struct {
	method, httpAuth  string
	data              []byte
	certFile, keyFile string
}

// credentials turns Pulsar's authentication plugin and parameters into
// CONNECT's method and data and the admin API's Authorization header:
//   - token (plugin "token" or org.apache.pulsar.client.impl.auth.AuthenticationToken,
//     or none with parameters): "token:<jwt>", "file:<path>", {"token":"<jwt>"}
//     or the bare JWT;
//   - basic (plugin "basic" or ...AuthenticationBasic): {"userId":"u","password":"p"};
//   - TLS (plugin "tls" or ...AuthenticationTls): "tlsCertFile:<path>,tlsKeyFile:<path>"
//     or {"tlsCertFile":"<path>","tlsKeyFile":"<path>"}.
func credentials(plugin, params string) (linkCredentials, error) {
	p := strings.ToLower(strings.TrimSpace(plugin))
	params = strings.TrimSpace(params)
	switch {
	case p == "" && params == "":
		return linkCredentials{}, nil
	case p == "" || p == "token" || strings.HasSuffix(p, "authenticationtoken"):
		tok, err := tokenParams(params)
		if err != nil {
			return linkCredentials{}, err
		}
		return linkCredentials{method: "token", data: []byte(tok), httpAuth: "Bearer " + tok}, nil
	case p == "basic" || strings.HasSuffix(p, "authenticationbasic"):
		var j struct {
			UserID   string `json:"userId"`
			Password string `json:"password"`
		}
		if err := json.Unmarshal([]byte(params), &j); err != nil {
			return linkCredentials{}, fmt.Errorf(`authenticationParameters of basic authentication: want {"userId":"<user>","password":"<password>"}: %w`, err)
		}
		if j.UserID == "" || strings.Contains(j.UserID, ":") {
			return linkCredentials{}, errors.New("authenticationParameters of basic authentication: userId is empty or holds a colon")
		}
		up := j.UserID + ":" + j.Password
		return linkCredentials{method: "basic", data: []byte(up), httpAuth: "Basic " + base64.StdEncoding.EncodeToString([]byte(up))}, nil
	case p == "tls" || strings.HasSuffix(p, "authenticationtls"):
		kv, err := pluginParams(params)
		if err != nil {
			return linkCredentials{}, err
		}
		if kv["tlsCertFile"] == "" || kv["tlsKeyFile"] == "" {
			return linkCredentials{}, errors.New("authenticationParameters of TLS authentication need tlsCertFile and tlsKeyFile")
		}
		return linkCredentials{method: "tls", certFile: kv["tlsCertFile"], keyFile: kv["tlsKeyFile"]}, nil
	default:
		return linkCredentials{}, fmt.Errorf("authentication plugin %q is not supported for replication (token, basic or tls)", plugin)
	}
}

// tokenParams reads a token plugin's parameters.
func tokenParams(params string) (string, error) {
	var tok string
	switch {
	case strings.HasPrefix(params, "{"):
		var j struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal([]byte(params), &j); err != nil {
			return "", fmt.Errorf("authenticationParameters: %w", err)
		}
		tok = j.Token
	case strings.HasPrefix(params, "token:"):
		tok = strings.TrimPrefix(params, "token:")
	case strings.HasPrefix(params, "file:"):
		b, err := readTokenFile(strings.TrimPrefix(strings.TrimPrefix(params, "file:"), "//"))
		if err != nil {
			return "", fmt.Errorf("authenticationParameters: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	default:
		tok = params
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", errors.New("authenticationParameters hold no token")
	}
	return tok, nil
}

// pluginParams reads parameters given as JSON or as Pulsar's
// "key1:value1,key2:value2".
func pluginParams(params string) (map[string]string, error) {
	kv := map[string]string{}
	if strings.HasPrefix(params, "{") {
		if err := json.Unmarshal([]byte(params), &kv); err != nil {
			return nil, fmt.Errorf("authenticationParameters: %w", err)
		}
		return kv, nil
	}
	for _, part := range strings.Split(params, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("authenticationParameters: %q is not key:value", part)
		}
		kv[k] = v
	}
	return kv, nil
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
