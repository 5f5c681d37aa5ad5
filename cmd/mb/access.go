package main

// `mb access`: the self-service access control plane (api/access/v1) —
// tenants, role associations, credentials — over gRPC.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	accessv1 "github.com/messagebus/messagebus/api/access/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const defaultAccessURL = "localhost:8090"

// accessOptions are the flags shared by every `mb access` command.
type accessOptions struct {
	url       string
	token     string
	tokenFile string
	output    string
	timeout   time.Duration
	tls       tlsOptions
	useTLS    bool
}

func newAccessCommand() *cobra.Command {
	o := &accessOptions{}
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Self-service access: tenants, workload roles and credentials",
		Long: `Talk to the access control plane (gRPC, mb standalone --grpc-addr).

The platform team creates tenants administered by identity-provider groups;
members of those groups log in with their browser and manage their tenant's
roles; workloads exchange their identity (an OIDC token such as a Kubernetes
service-account token, or AWS credentials) for a short-lived broker token.

  mb access create-tenant --tenant new_team --groups new_team_eng
  mb access login --tenant new_team
  mb access associate-role --tenant new_team --identity system:serviceaccount:apps:billing \
      --role billing --actions produce,consume --namespace default
  PULSAR_AUTH_TOKEN=$(mb access creds --tenant new_team --role billing --identity-token-file /var/run/secrets/tokens/mb)`,
		Args: cobra.NoArgs,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return o.validate()
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.url, "access-url", envOr("MB_ACCESS_URL", defaultAccessURL), "control plane address: host:port, or grpcs://host:port for TLS (env MB_ACCESS_URL)")
	pf.StringVar(&o.token, "auth-token", "", "broker token identifying the caller (env MB_AUTH_TOKEN)")
	pf.StringVar(&o.tokenFile, "auth-token-file", "", "file holding the caller's token (env MB_AUTH_TOKEN_FILE)")
	pf.StringVarP(&o.output, "output", "o", outputTable, "output format: table or json")
	pf.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up on a call after this long")
	o.tls.register(pf)
	cmd.AddCommand(
		newAccessCreateTenantCommand(o),
		newAccessListTenantsCommand(o),
		newAccessLoginCommand(o),
		newAccessAssociateRoleCommand(o),
		newAccessRemoveRoleCommand(o),
		newAccessListRolesCommand(o),
		newAccessCredsCommand(o),
		newAccessWhoAmICommand(o),
		newAccessAuditCommand(o),
	)
	return cmd
}

func (o *accessOptions) validate() error {
	if err := tokenFromEnv(&o.token, &o.tokenFile); err != nil {
		return err
	}
	if o.output != outputTable && o.output != outputJSON {
		return fmt.Errorf("invalid --output %q: want table or json", o.output)
	}
	if o.url == "" {
		return errors.New("--access-url is required")
	}
	if !strings.Contains(o.url, "://") {
		o.url = "grpc://" + o.url
	}
	if err := o.tls.check(o.url, "--access-url", "grpcs://", "grpcs"); err != nil {
		return err
	}
	o.useTLS = strings.HasPrefix(o.url, "grpcs://")
	o.url = strings.TrimPrefix(strings.TrimPrefix(o.url, "grpcs://"), "grpc://")
	if o.timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	return nil
}

// accessClient is a connection to the control plane.
type accessClient struct {
	api  accessv1.AccessClient
	conn *grpc.ClientConn
	o    *accessOptions
}

func (o *accessOptions) connect() (*accessClient, error) {
	creds := insecure.NewCredentials()
	if o.useTLS {
		cfg, err := o.tls.config()
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(o.url, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("access control plane %s: %w", o.url, err)
	}
	return &accessClient{api: accessv1.NewAccessClient(conn), conn: conn, o: o}, nil
}

func (c *accessClient) Close() error { return c.conn.Close() }

// ctx bounds one call and carries the caller's token. The token file is
// read on each call: it may be refreshed under us (mb access creds --watch).
func (c *accessClient) ctx(parent context.Context) (context.Context, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(parent, c.o.timeout)
	tok := c.o.token
	if c.o.tokenFile != "" {
		b, err := os.ReadFile(c.o.tokenFile)
		if err != nil {
			cancel()
			return nil, nil, fmt.Errorf("read token file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	return ctx, cancel, nil
}

// call runs one RPC and turns a gRPC status into the server's message.
func call[Req, Resp any](cmd *cobra.Command, c *accessClient, fn func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	var zero Resp
	ctx, cancel, err := c.ctx(cmd.Context())
	if err != nil {
		return zero, err
	}
	defer cancel()
	resp, err := fn(ctx, req)
	if err != nil {
		if st, ok := status.FromError(err); ok {
			msg := st.Message()
			if st.Code() == codes.Unavailable {
				msg += c.o.tlsHint(msg)
			}
			return zero, fmt.Errorf("%s: %s", codeWords(st.Code().String()), msg)
		}
		return zero, err
	}
	return resp, nil
}

// tlsHint explains a connection failure that a TLS mismatch causes: a
// server with a certificate serves gRPC over TLS only.
func (o *accessOptions) tlsHint(msg string) string {
	switch {
	case o.useTLS && strings.Contains(msg, "first record does not look like a TLS handshake"):
		return " (the control plane does not use TLS on this port: use grpc://" + o.url + ")"
	case !o.useTLS && (strings.Contains(msg, "server preface") || strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset")):
		return " (if the control plane uses TLS, as it does whenever the server has a certificate, use --access-url grpcs://" + o.url + ")"
	}
	return ""
}

// codeWords spells a gRPC code name as words: PermissionDenied ->
// "permission denied".
func codeWords(code string) string {
	var b strings.Builder
	for i, r := range code {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToLower(b.String())
}

// withAccess runs fn with a connected client.
func withAccess(o *accessOptions, fn func(c *accessClient) error) error {
	c, err := o.connect()
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

// printMessage prints a response as JSON (protojson) or as rows.
func (o *accessOptions) printMessage(w io.Writer, m proto.Message, table func(p *printer) error) error {
	if o.output == outputJSON {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	return table(&printer{w: w})
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func formatTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}
