package broker

import (
	"context"
	"errors"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/schema"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func errorCommand(requestID uint64, code pb.ServerError, msg string) *pb.BaseCommand {
	return &pb.BaseCommand{
		Type:  pb.BaseCommand_ERROR.Enum(),
		Error: &pb.CommandError{RequestId: proto.Uint64(requestID), Error: code.Enum(), Message: proto.String(msg)},
	}
}

func successCommand(requestID uint64) *pb.BaseCommand {
	return &pb.BaseCommand{
		Type:    pb.BaseCommand_SUCCESS.Enum(),
		Success: &pb.CommandSuccess{RequestId: proto.Uint64(requestID)},
	}
}

// serverError maps a broker error to the code the client acts on.
func serverError(err error) pb.ServerError {
	switch {
	case errors.Is(err, naming.ErrInvalid):
		return pb.ServerError_InvalidTopicName
	case errors.Is(err, errShuttingDown):
		return pb.ServerError_ServiceNotReady
	case schema.IsIncompatible(err), schema.IsInvalid(err):
		return pb.ServerError_IncompatibleSchema
	case errors.Is(err, schema.ErrNoSchema):
		return pb.ServerError_TopicNotFound
	}
	// The code chosen where the error arose wins over what it wraps.
	var be *brokerError
	if errors.As(err, &be) {
		return be.code
	}
	switch {
	case errors.Is(err, meta.ErrNotFound):
		return pb.ServerError_MetadataError
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return pb.ServerError_ServiceNotReady
	}
	return pb.ServerError_UnknownError
}

// brokerError carries the wire error code chosen where the error arises.
type brokerError struct {
	code pb.ServerError
	msg  string
	err  error // wrapped, when made by wrapError
}

func (e *brokerError) Error() string { return e.msg }

func (e *brokerError) Unwrap() error { return e.err }

func newError(code pb.ServerError, msg string) error { return &brokerError{code: code, msg: msg} }

// wrapError gives err a wire error code; errors.Is still sees err.
func wrapError(code pb.ServerError, err error) error {
	return &brokerError{code: code, msg: err.Error(), err: err}
}

// requestID extracts the request id of commands that carry one.
func requestID(cmd *pb.BaseCommand) (uint64, bool) {
	type withRequestID interface{ GetRequestId() uint64 }
	m := cmd.ProtoReflect()
	var found withRequestID
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		if r, ok := v.Message().Interface().(withRequestID); ok {
			found = r
			return false
		}
		return true
	})
	if found == nil {
		return 0, false
	}
	return found.GetRequestId(), true
}
