package access

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	accessv1 "github.com/messagebus/messagebus/api/access/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// The same API as JSON over HTTP, for tools that do not speak gRPC:
//
//	POST /access/v1/<Method>   body: the request message as JSON (protojson)
//	Authorization: Bearer <broker token>
//
// e.g. POST /access/v1/WhoAmI with {}. Answers are the response message as
// JSON, or {"code": "...", "reason": "..."} with the HTTP status of the gRPC
// code. It is served on the admin HTTP port.

// PlaintextRefusal is the reason given for a call of the JSON mapping over
// plain HTTP while TLS is required (Config.RequireTLS).
const PlaintextRefusal = "the access API takes credentials over TLS only on this server (--access-require-tls): use the HTTPS port (--https-addr) or gRPC with TLS (grpcs://)"

// RESTPrefix is where the JSON mapping is mounted.
const RESTPrefix = "/access/v1/"

// maxRESTBody bounds a request: the largest is a signed AWS request.
const maxRESTBody = 256 << 10

type restMethod struct {
	public bool
	newReq func() proto.Message
	call   func(ctx context.Context, req proto.Message) (proto.Message, error)
}

func restCall[Req, Resp proto.Message](public bool, fn func(context.Context, Req) (Resp, error), newReq func() Req) restMethod {
	return restMethod{
		public: public,
		newReq: func() proto.Message { return newReq() },
		call: func(ctx context.Context, req proto.Message) (proto.Message, error) {
			return fn(ctx, req.(Req))
		},
	}
}

func (s *Service) restMethods() map[string]restMethod {
	return map[string]restMethod{
		"GetConfig":         restCall(true, s.GetConfig, func() *accessv1.GetConfigRequest { return &accessv1.GetConfigRequest{} }),
		"CreateTenant":      restCall(false, s.CreateTenant, func() *accessv1.CreateTenantRequest { return &accessv1.CreateTenantRequest{} }),
		"ListTenants":       restCall(false, s.ListTenants, func() *accessv1.ListTenantsRequest { return &accessv1.ListTenantsRequest{} }),
		"Login":             restCall(true, s.Login, func() *accessv1.LoginRequest { return &accessv1.LoginRequest{} }),
		"AssociateRole":     restCall(false, s.AssociateRole, func() *accessv1.AssociateRoleRequest { return &accessv1.AssociateRoleRequest{} }),
		"RemoveAssociation": restCall(false, s.RemoveAssociation, func() *accessv1.RemoveAssociationRequest { return &accessv1.RemoveAssociationRequest{} }),
		"ListRoles":         restCall(false, s.ListRoles, func() *accessv1.ListRolesRequest { return &accessv1.ListRolesRequest{} }),
		"GetCredentials":    restCall(true, s.GetCredentials, func() *accessv1.GetCredentialsRequest { return &accessv1.GetCredentialsRequest{} }),
		"WhoAmI":            restCall(false, s.WhoAmI, func() *accessv1.WhoAmIRequest { return &accessv1.WhoAmIRequest{} }),
		"ListAudit":         restCall(false, s.ListAudit, func() *accessv1.ListAuditRequest { return &accessv1.ListAuditRequest{} }),
	}
}

// HTTPHandler serves the JSON mapping under RESTPrefix.
func (s *Service) HTTPHandler() http.Handler {
	methods := s.restMethods()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, RESTPrefix)
		m, ok := methods[name]
		if !ok {
			writeStatus(w, status.Errorf(codes.NotFound, "no access method %q", name))
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeStatus(w, status.Error(codes.Unimplemented, "use POST"))
			return
		}
		req := m.newReq()
		resp, err := s.guard(r.Context(), name, hostOf(r.RemoteAddr), req, func(ctx context.Context) (any, error) {
			if s.cfg.RequireTLS && r.TLS == nil {
				// The bearer token or identity proof has crossed the network
				// in clear already; refusing still keeps it from being used
				// here and tells the client to stop.
				return nil, refuse(ctx, ReasonPlaintext, status.Error(codes.PermissionDenied, PlaintextRefusal))
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRESTBody))
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "read body: %v", err)
			}
			if len(strings.TrimSpace(string(body))) > 0 {
				if err := protojson.Unmarshal(body, req); err != nil {
					return nil, status.Errorf(codes.InvalidArgument, "invalid JSON body: %v", err)
				}
			}
			if !m.public {
				if ctx, err = s.withCaller(ctx, r.Header.Get("Authorization")); err != nil {
					return nil, err
				}
			}
			return m.call(ctx, req)
		})
		if err != nil {
			writeStatus(w, err)
			return
		}
		b, err := protojson.Marshal(resp.(proto.Message))
		if err != nil {
			writeStatus(w, status.Error(codes.Internal, err.Error()))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
}

// httpStatus maps gRPC codes to HTTP statuses.
var httpStatus = map[codes.Code]int{
	codes.InvalidArgument:    http.StatusBadRequest,
	codes.Unauthenticated:    http.StatusUnauthorized,
	codes.PermissionDenied:   http.StatusForbidden,
	codes.NotFound:           http.StatusNotFound,
	codes.AlreadyExists:      http.StatusConflict,
	codes.FailedPrecondition: http.StatusPreconditionFailed,
	codes.Unimplemented:      http.StatusMethodNotAllowed,
	codes.Unavailable:        http.StatusServiceUnavailable,
}

func writeStatus(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	code, ok := httpStatus[st.Code()]
	if !ok {
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"code": st.Code().String(), "reason": st.Message()})
}
