package replication

import (
	"context"
	"encoding/json"
	"fmt"
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
	// One client (kept-alive connections) while the registration stays the same.
	var client *http.Client
	clientCfg := ""
	defer func() {
		if client != nil {
			client.CloseIdleConnections()
		}
	}()
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
			if err := r.postSubscription(&client, &clientCfg, sub, pos); err != nil && r.ctx.Err() == nil {
				r.log.Debug("replicated subscription update not delivered; the next one follows", "subscription", sub, "err", err)
			}
		}
	}
}

func (r *Replicator) postSubscription(client **http.Client, clientCfg *string, sub string, pos map[string]string) error {
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	ep, err := r.cfg.Endpoint(ctx)
	if err != nil {
		return err
	}
	if ep.ServiceURL == "" {
		return fmt.Errorf("cluster %s has no serviceUrl", r.cfg.RemoteCluster)
	}
	if *client == nil || *clientCfg != ep.config {
		if *client != nil {
			(*client).CloseIdleConnections()
		}
		*client, *clientCfg = ep.adminClient(), ep.config
	}
	body, _ := json.Marshal(geo.SubscriptionUpdate{Positions: pos})
	path := "/admin/v2/" + strings.Replace(r.cfg.Topic, "://", "/", 1) +
		"/subscription/" + url.PathEscape(sub) + "/" + geo.SubscriptionPath
	code, answer, err := ep.adminCall(ctx, *client, http.MethodPost, path, string(body))
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return fmt.Errorf("HTTP %d %s", code, answer)
	}
	return nil
}
