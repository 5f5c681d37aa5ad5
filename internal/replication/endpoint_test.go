package replication

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/messagebus/messagebus/internal/meta"
)

func TestEndpointOf(t *testing.T) {
	basic := meta.ClusterData{BrokerServiceURL: "pulsar://b:6650", BrokerServiceURLTls: "pulsar+ssl://b", ServiceURLTls: "https://b:8443",
		BrokerClientTLSEnabled: true, TLSAllowInsecureConnection: true,
		AuthenticationPlugin: "org.apache.pulsar.client.impl.auth.AuthenticationBasic", AuthenticationParameters: `{"userId":"u","password":"p:w"}`}
	ep, err := EndpointOf("b", basic)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Addr != "b:6651" || ep.TLS == nil || ep.TLS.ServerName != "b" || ep.HTTPTLS == nil || ep.ServiceURL != "https://b:8443" {
		t.Fatalf("endpoint %+v", ep)
	}
	if ep.AuthMethod != "basic" || string(ep.AuthData) != "u:p:w" {
		t.Fatalf("CONNECT credentials %q %q", ep.AuthMethod, ep.AuthData)
	}
	req, _ := http.NewRequest("GET", ep.ServiceURL, nil)
	ep.authorize(req)
	if u, p, ok := req.BasicAuth(); !ok || u != "u" || p != "p:w" {
		t.Fatalf("admin credentials %q", req.Header.Get("Authorization"))
	}

	tok := meta.ClusterData{BrokerServiceURL: "pulsar://b", ServiceURL: "http://b:8080", AuthenticationPlugin: "token", AuthenticationParameters: "token:abc"}
	ep, err = EndpointOf("b", tok)
	if err != nil || ep.TLS != nil || ep.HTTPTLS != nil || ep.AuthMethod != "token" {
		t.Fatalf("token endpoint %+v %v", ep, err)
	}
	req, _ = http.NewRequest("GET", ep.ServiceURL, nil)
	ep.authorize(req)
	if req.Header.Get("Authorization") != "Bearer abc" {
		t.Fatalf("admin credentials %q", req.Header.Get("Authorization"))
	}
	again, _ := EndpointOf("b", tok)
	tok.AuthenticationParameters = "token:def"
	changed, _ := EndpointOf("b", tok)
	if again.config != ep.config || changed.config == ep.config {
		t.Fatal("a change of credentials is not seen as a change")
	}

	multi, err := EndpointOf("b", meta.ClusterData{BrokerServiceURL: "pulsar://b0:6650,b1,[::1]:7000"})
	if err != nil || !slices.Equal(multi.addrs(), []string{"b0:6650", "b1:6650", "[::1]:7000"}) || multi.Addr != "b0:6650" {
		t.Fatalf("multi-host endpoint %+v %v", multi, err)
	}

	for _, bad := range []struct {
		c    meta.ClusterData
		want string
	}{
		{meta.ClusterData{BrokerServiceURL: "pulsar://b", AuthenticationPlugin: "tls", AuthenticationParameters: "tlsCertFile:/c,tlsKeyFile:/k"}, "needs a pulsar+ssl"},
		{meta.ClusterData{BrokerServiceURL: "pulsar://b", AuthenticationPlugin: "basic", AuthenticationParameters: "u:p"}, "userId"},
		{meta.ClusterData{BrokerServiceURL: "pulsar://b", AuthenticationPlugin: "oauth2", AuthenticationParameters: "x"}, "not supported"},
		{meta.ClusterData{BrokerServiceURLTls: "pulsar+ssl://b", BrokerClientTrustCertsFilePath: "/nonexistent"}, "trust certificates"},
		{meta.ClusterData{BrokerServiceURLTls: "pulsar+ssl://b", BrokerClientCertificateFilePath: "/c"}, "both a certificate and a key"},
		{meta.ClusterData{ServiceURL: "http://b"}, "no brokerServiceUrl"},
		{meta.ClusterData{BrokerServiceURL: "pulsar://b0,,b1"}, "invalid broker URL"},
		{meta.ClusterData{BrokerServiceURL: "http://b0:80"}, "is not pulsar://"},
	} {
		if _, err := EndpointOf("b", bad.c); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", bad.c, err, bad.want)
		}
	}
}
