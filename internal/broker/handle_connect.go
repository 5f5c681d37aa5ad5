package broker

import (
	"errors"

	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Connection handshake.
//
//	CONNECT (2): protocol_version (negotiated down to maxProtocolVersion,
//	  20), client_version (logged, shown in stats), auth_method_name and
//	  auth_data (handle_auth.go), feature_flags.supports_auth_refresh.
//	  Answered with exactly one CONNECTED (server_version, the negotiated
//	  protocol_version, max_message_size, feature_flags.supports_auth_refresh
//	  when authentication is on) or ERROR AuthenticationError and a close.
//	  A second CONNECT gets ERROR NotAllowedError and a close.
//	Ignored: original_principal, original_auth_data, original_auth_method
//	  (proxies), proxy_to_broker_url, proxy_version.

// serverVersion is reported in CONNECTED.
const serverVersion = "MessageBus 0.1"

// handleConnect answers CONNECT with exactly one CONNECTED: the client treats
// anything else during the handshake as a failure.
func (c *conn) handleConnect(cmd *pb.CommandConnect) error {
	if c.connected.Load() {
		c.writeCommand(errorCommand(0, pb.ServerError_NotAllowedError, "already connected"))
		return errors.New("second CONNECT")
	}
	v := cmd.GetProtocolVersion()
	if v > maxProtocolVersion {
		v = maxProtocolVersion
	}
	c.protocolVersion = v
	c.clientVersion = cmd.GetClientVersion()
	if err := c.authenticate(cmd); err != nil {
		return err
	}
	c.connected.Store(true)
	c.log.Debug("client connected", "client", cmd.GetClientVersion(), "protocol", v)
	c.writeCommand(&pb.BaseCommand{
		Type: pb.BaseCommand_CONNECTED.Enum(),
		Connected: &pb.CommandConnected{
			ServerVersion:   proto.String(serverVersion),
			ProtocolVersion: proto.Int32(v),
			MaxMessageSize:  proto.Int32(int32(c.b.cfg.MaxMessageSize)),
			FeatureFlags:    &pb.FeatureFlags{SupportsAuthRefresh: proto.Bool(c.b.cfg.Auth.Enabled())},
		},
	})
	return nil
}
