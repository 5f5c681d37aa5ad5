package broker

import (
	"errors"

	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

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
