package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/messagebus/messagebus/internal/geo"
)

// The link's calls to the remote's admin API (partitioned topic creation,
// replicated subscriptions). A remote cluster of several brokers answers a
// topic call on a broker that does not own the topic with a 307 to the
// owner: the call follows it with the link's credentials (Go's client
// drops the Authorization header on a redirect to another host). A
// multi-host serviceUrl (http://h1:8080,h2:8080) names several brokers: a
// call starts at a random one and tries the next when one cannot be
// reached.

// adminHTTPPorts are the ports of admin URLs without one, by scheme.
var adminHTTPPorts = map[string]string{"http": "80", "https": "443"}

// maxAdminRedirects bounds the redirects one admin call follows.
const maxAdminRedirects = 8

// adminClient is an HTTP client for ep's admin API that keeps the link's
// credentials across redirects.
func (ep Endpoint) adminClient() *http.Client {
	c := ep.httpClient()
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxAdminRedirects {
			return fmt.Errorf("more than %d redirects", maxAdminRedirects)
		}
		ep.authorize(req)
		return nil
	}
	return c
}

// adminCall sends method path (an /admin/v2/... path) with body (JSON; ""
// for none) to the remote's admin API and returns the answer's status and
// body (at most 64 KiB of it).
func (ep Endpoint) adminCall(ctx context.Context, client *http.Client, method, path, body string) (int, string, error) {
	if ep.ServiceURL == "" {
		return 0, "", errors.New("the remote cluster has no serviceUrl")
	}
	scheme, hosts, err := geo.SplitServiceURL(strings.TrimSuffix(ep.ServiceURL, "/"), adminHTTPPorts)
	if err != nil {
		return 0, "", fmt.Errorf("serviceUrl: %w", err)
	}
	first := rand.IntN(len(hosts))
	for i := range hosts {
		u := scheme + "://" + hosts[(first+i)%len(hosts)] + path
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		ep.authorize(req)
		var resp *http.Response
		resp, err = client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			continue // the next broker of the cluster
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return resp.StatusCode, string(b), nil
	}
	return 0, "", err
}
