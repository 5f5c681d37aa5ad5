package replication

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Partitioned topics replicate partition by partition: the replicator of
// partition i sends to partition i of the same partitioned topic on the
// remote. Before its first send on each connection it makes sure the
// remote topic is partitioned with at least as many partitions, creating
// it with the source's count through the remote's admin API (its
// serviceUrl, with the link's credentials) when it does not exist. A remote
// topic with fewer partitions, or one the link's role may not create, is
// an error the replicator reports in its stats and retries.

// ensurePartitioned checks (and when missing creates) the partitioned topic
// base ("persistent://t/ns/x") with n partitions on the remote.
func ensurePartitioned(ctx context.Context, ep Endpoint, base string, n int) error {
	if ep.ServiceURL == "" {
		return fmt.Errorf("the remote cluster has no serviceUrl to create partitioned topic %s with", base)
	}
	path := "/admin/v2/" + strings.Replace(base, "://", "/", 1) + "/partitions"
	client := ep.adminClient()
	defer client.CloseIdleConnections()
	do := func(method, body string) (int, string, error) {
		return ep.adminCall(ctx, client, method, path, body)
	}
	for attempt := 0; attempt < 2; attempt++ {
		code, body, err := do(http.MethodGet, "")
		if err != nil {
			return fmt.Errorf("read partitions of %s on the remote: %w", base, err)
		}
		have := 0
		switch code {
		case http.StatusOK:
			var m struct {
				Partitions int `json:"partitions"`
			}
			if err := json.Unmarshal([]byte(body), &m); err != nil {
				return fmt.Errorf("partitions of %s on the remote: %q: %w", base, body, err)
			}
			have = m.Partitions
		case http.StatusNotFound:
		default:
			return fmt.Errorf("read partitions of %s on the remote: HTTP %d %s", base, code, body)
		}
		if have >= n {
			return nil
		}
		if have > 0 {
			return fmt.Errorf("partitioned topic %s has %d partitions on the remote, fewer than the %d here", base, have, n)
		}
		code, body, err = do(http.MethodPut, strconv.Itoa(n))
		if err != nil {
			return fmt.Errorf("create partitioned topic %s on the remote: %w", base, err)
		}
		switch code {
		case http.StatusNoContent, http.StatusOK:
			return nil
		case http.StatusConflict: // created meanwhile, or a non-partitioned topic: look again
			continue
		default:
			return fmt.Errorf("create partitioned topic %s on the remote: HTTP %d %s", base, code, body)
		}
	}
	return fmt.Errorf("partitioned topic %s cannot be created on the remote: a non-partitioned topic has its name", base)
}
