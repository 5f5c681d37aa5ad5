package replication

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/messagebus/messagebus/internal/geo"
)

// Replicated subscriptions: the broker hands the replicator, about once a
// second, the progress of each replicated subscription as source
// watermarks (cluster -> "ledgerId:entryId": every entry from that cluster
// up to that source position is acknowledged here). The replicator posts
// them to the remote's admin API, which moves the subscription of the same
// name there over the entries those watermarks cover (broker:
// ApplyReplicatedSubscription). Posting fails quietly: the next second
// posts again.

// UpdateSubscription queues the watermarks of subscription sub; the latest
// ones of each subscription are posted at the next round.
func (r *Replicator) UpdateSubscription(sub string, positions map[string]string) {
	r.subMu.Lock()
	if r.subUpdates == nil {
		r.subUpdates = map[string]map[string]string{}
	}
	r.subUpdates[sub] = positions
	r.subMu.Unlock()
	select {
	case r.subSignal <- struct{}{}:
	default:
	}
}

// subscriptionLoop posts queued subscription updates until Stop.
func (r *Replicator) subscriptionLoop() {
	defer r.subWG.Done()
	client := &http.Client{}
	defer client.CloseIdleConnections()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.subSignal:
		}
		r.subMu.Lock()
		updates := r.subUpdates
		r.subUpdates = nil
		r.subMu.Unlock()
		for sub, pos := range updates {
			if err := r.postSubscription(client, sub, pos); err != nil && r.ctx.Err() == nil {
				r.log.Debug("replicated subscription update not delivered; the next one follows", "subscription", sub, "err", err)
			}
		}
	}
}

func (r *Replicator) postSubscription(client *http.Client, sub string, pos map[string]string) error {
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	ep, err := r.cfg.Endpoint(ctx)
	if err != nil {
		return err
	}
	if ep.ServiceURL == "" {
		return fmt.Errorf("cluster %s has no serviceUrl", r.cfg.RemoteCluster)
	}
	if ep.HTTPTLS != nil {
		client = ep.httpClient()
		defer client.CloseIdleConnections()
	}
	body, _ := json.Marshal(geo.SubscriptionUpdate{Positions: pos})
	u := strings.TrimSuffix(ep.ServiceURL, "/") + "/admin/v2/" + strings.Replace(r.cfg.Topic, "://", "/", 1) +
		"/subscription/" + url.PathEscape(sub) + "/" + geo.SubscriptionPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	ep.authorize(req)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("HTTP %d %s", resp.StatusCode, b)
	}
	return nil
}
