package broker

import (
	"context"
	"errors"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Topic lookup and partition metadata.
//
//	LOOKUP (23): topic; answered LOOKUP_RESPONSE Connect with this broker's
//	  broker_service_url (and broker_service_url_tls when TLS is on),
//	  authoritative=true and proxy_through_service_url=true; Failed with
//	  AuthorizationError, InvalidTopicName or ServiceNotReady (metadata
//	  unavailable or slow). With advertised_listener_name: that listener's
//	  URLs (--advertised-listeners) and proxy_through_service_url=false, or
//	  Failed ServiceNotReady "the broker do not have <name> listener".
//	  In cluster mode (persistent topics): Connect with the bundle owner's
//	  URL (this broker or another; broker_service_url_tls too when the
//	  owner has a TLS listener), authoritative=true,
//	  proxy_through_service_url=false; for an unowned bundle assigned to
//	  another broker, Redirect to it with authoritative=true (it then takes
//	  the bundle), as Pulsar. The request's authoritative flag makes this
//	  broker take an unowned bundle itself.
//	PARTITIONED_METADATA (21): topic; PARTITIONED_METADATA_RESPONSE with
//	  partitions (0: not partitioned; auto-created per the namespace's policy),
//	  Failed with TopicNotFound when the namespace does not exist,
//	  InvalidTopicName, AuthorizationError or ServiceNotReady. The transaction
//	  coordinator topic reports 0 partitions (transactions are off).

// handleLookup answers authoritatively with this broker. proxy_through_service_url
// makes the client keep using the address it dialled, so a wrong advertised
// host name cannot break standalone setups.
func (c *conn) handleLookup(ctx context.Context, cmd *pb.CommandLookupTopic) {
	resp := &pb.CommandLookupTopicResponse{RequestId: proto.Uint64(cmd.GetRequestId())}
	t, err := naming.ParseTopic(cmd.GetTopic())
	if err == nil {
		err = c.authorizeLookup(ctx, t)
	}
	if err != nil {
		err = lookupError(ctx, err)
		c.countTimeout(ctx, "lookup", err)
		lookupFailed(resp, err)
	} else if o := c.b.cfg.Ownership; o != nil && t.IsPersistent() {
		c.lookupCluster(ctx, o, t, cmd.GetAuthoritative(), cmd.GetAdvertisedListenerName(), resp)
	} else if name := cmd.GetAdvertisedListenerName(); name != "" {
		l, ok := c.b.cfg.Listeners[name]
		if !ok {
			lookupFailed(resp, errNoListener(name))
		} else {
			// The client asked for this listener's address: it connects
			// there rather than keeping the one it dialled.
			lookupConnect(resp, l.PulsarURL, l.PulsarTLSURL, false)
		}
	} else {
		lookupConnect(resp, c.b.cfg.AdvertisedURL, c.b.cfg.AdvertisedTLSURL, true)
	}
	c.writeCommand(&pb.BaseCommand{Type: pb.BaseCommand_LOOKUP_RESPONSE.Enum(), LookupTopicResponse: resp})
}

// transactionCoordinatorAssign is the topic whose partitions clients take
// for transaction coordinators.
const transactionCoordinatorAssign = "persistent://pulsar/system/transaction_coordinator_assign"

// handlePartitionedMetadata reports the partition count (0 for a
// non-partitioned topic). A topic in a namespace that does not exist fails
// here, so clients get a clear error before creating producers or consumers.
func (c *conn) handlePartitionedMetadata(ctx context.Context, cmd *pb.CommandPartitionedTopicMetadata) {
	resp := &pb.CommandPartitionedTopicMetadataResponse{RequestId: proto.Uint64(cmd.GetRequestId())}
	fail := func(code pb.ServerError, msg string) {
		resp.Response = pb.CommandPartitionedTopicMetadataResponse_Failed.Enum()
		resp.Error = code.Enum()
		resp.Message = proto.String(msg)
	}
	// A failed or timed-out metadata read is retriable (ServiceNotReady).
	failErr := func(err error) {
		err = lookupError(ctx, err)
		c.countTimeout(ctx, "partitioned_metadata", err)
		fail(serverError(err), err.Error())
	}
	if t, err := naming.ParseTopic(cmd.GetTopic()); err != nil {
		fail(pb.ServerError_InvalidTopicName, err.Error())
	} else if err := c.authorizeLookup(ctx, t); err != nil {
		failErr(err)
	} else if _, err := c.b.policies.Namespace(ctx, t.Namespace); errors.Is(err, meta.ErrNotFound) {
		fail(pb.ServerError_TopicNotFound, "namespace "+t.Namespace.String()+" does not exist")
	} else if err != nil {
		failErr(c.b.metadataError("namespace", err))
	} else if t.String() == transactionCoordinatorAssign {
		// Transactions are not supported: like a Pulsar broker with the
		// coordinator disabled, report no coordinator partitions (never
		// auto-created), so a client asking for transactions fails at once
		// with "The broker doesn't enable the transaction coordinator".
		resp.Response = pb.CommandPartitionedTopicMetadataResponse_Success.Enum()
		resp.Partitions = proto.Uint32(0)
	} else if n, err := c.b.autoPartitions(ctx, t); err != nil {
		failErr(c.b.metadataError("partitioned_topic", err))
	} else {
		resp.Response = pb.CommandPartitionedTopicMetadataResponse_Success.Enum()
		resp.Partitions = proto.Uint32(uint32(n))
	}
	c.writeCommand(&pb.BaseCommand{Type: pb.BaseCommand_PARTITIONED_METADATA_RESPONSE.Enum(), PartitionMetadataResponse: resp})
}

// lookupCluster answers a lookup with the owner of the topic's bundle.
func (c *conn) lookupCluster(ctx context.Context, o Ownership, t naming.Topic, authoritative bool, listener string, resp *pb.CommandLookupTopicResponse) {
	ans, err := o.Lookup(ctx, t.Namespace.String(), t.String(), authoritative)
	if err != nil {
		resp.Response = pb.CommandLookupTopicResponse_Failed.Enum()
		resp.Error = pb.ServerError_ServiceNotReady.Enum()
		resp.Message = proto.String(err.Error())
		return
	}
	url, tlsURL := ans.PulsarURL, ans.PulsarTLSURL
	listeners := ans.Listeners
	if ans.Self {
		url, tlsURL, listeners = c.b.cfg.AdvertisedURL, c.b.cfg.AdvertisedTLSURL, c.b.cfg.Listeners
	}
	if listener != "" {
		l, ok := listeners[listener]
		if !ok {
			lookupFailed(resp, errNoListener(listener))
			return
		}
		url, tlsURL = l.PulsarURL, l.PulsarTLSURL
	}
	lookupConnect(resp, url, tlsURL, false)
	if ans.Assign {
		resp.Response = pb.CommandLookupTopicResponse_Redirect.Enum()
	}
}

func lookupConnect(resp *pb.CommandLookupTopicResponse, url, tlsURL string, proxy bool) {
	resp.Response = pb.CommandLookupTopicResponse_Connect.Enum()
	if url != "" {
		resp.BrokerServiceUrl = proto.String(url)
	}
	if tlsURL != "" {
		resp.BrokerServiceUrlTls = proto.String(tlsURL)
	}
	resp.Authoritative = proto.Bool(true)
	resp.ProxyThroughServiceUrl = proto.Bool(proxy)
}

func lookupFailed(resp *pb.CommandLookupTopicResponse, err error) {
	resp.Response = pb.CommandLookupTopicResponse_Failed.Enum()
	resp.Error = serverError(err).Enum()
	resp.Message = proto.String(err.Error())
}
