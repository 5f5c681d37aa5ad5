package main

// `mb access creds`: a workload exchanges its identity for a broker token,
// once at start or continuously (--watch) as a sidecar.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	accessv1 "github.com/messagebus/messagebus/api/access/v1"
	"github.com/messagebus/messagebus/internal/access"
	"github.com/messagebus/messagebus/internal/access/identity"
	"github.com/messagebus/messagebus/internal/access/vault"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

type credsOptions struct {
	tenant, role      string
	identityTokenFile string
	aws               bool
	watch             bool
	out               string

	vaultAddr, vaultToken, vaultTokenFile, vaultMount, vaultPrefix, vaultPath string
	identity, issuer                                                          string

	issuedRole string // the full role of the last token fetched
}

func newAccessCredsCommand(o *accessOptions) *cobra.Command {
	co := &credsOptions{}
	cmd := &cobra.Command{
		Use:   "creds",
		Short: "Exchange this workload's identity for a short-lived broker token",
		Long: `Print a broker token for a role the workload's identity is associated with:

  PULSAR_AUTH_TOKEN=$(mb access creds --tenant my_team --role my_app \
      --identity-token-file /var/run/secrets/tokens/messagebus)

The identity is an OIDC token read from --identity-token-file (re-read on
every refresh, as projected service-account tokens rotate), or, with --aws,
the AWS credentials of the environment (a signed sts:GetCallerIdentity
request). With --vault-addr the token is read from Vault, where the control
plane keeps it fresh, instead.

--watch --out FILE keeps FILE holding a valid token: it is replaced once two
thirds of its lifetime have passed, until the command is stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCreds(cmd, o, co)
		},
	}
	f := cmd.Flags()
	f.StringVar(&co.tenant, "tenant", "", "tenant")
	f.StringVar(&co.role, "role", "", "role name (with or without the tenant prefix)")
	f.StringVar(&co.identityTokenFile, "identity-token-file", os.Getenv("MB_IDENTITY_TOKEN_FILE"), "file holding the workload's OIDC token (env MB_IDENTITY_TOKEN_FILE)")
	f.BoolVar(&co.aws, "aws", false, "prove the identity with the environment's AWS credentials")
	f.BoolVar(&co.watch, "watch", false, "keep --out fresh until stopped")
	f.StringVar(&co.out, "out", "", "write the token to this file (mode 0600) instead of stdout")
	f.StringVar(&co.vaultAddr, "vault-addr", "", "read the token from this Vault instead (env VAULT_ADDR is not used implicitly)")
	f.StringVar(&co.vaultToken, "vault-token", "", "Vault token (env VAULT_TOKEN)")
	f.StringVar(&co.vaultTokenFile, "vault-token-file", "", "file holding the Vault token")
	f.StringVar(&co.vaultMount, "vault-mount", "secret", "Vault KV v2 mount")
	f.StringVar(&co.vaultPrefix, "vault-prefix", "messagebus", "path prefix the control plane delivers under")
	f.StringVar(&co.vaultPath, "vault-path", "", "exact KV path (as list-roles shows it) instead of deriving it")
	f.StringVar(&co.identity, "identity", "", "with --vault-addr: the associated identity (ARN or OIDC subject)")
	f.StringVar(&co.issuer, "issuer", "", "with --vault-addr: the OIDC issuer of --identity")
	cmd.MarkFlagRequired("tenant")
	cmd.MarkFlagRequired("role")
	return cmd
}

func runCreds(cmd *cobra.Command, o *accessOptions, co *credsOptions) error {
	if co.watch && co.out == "" {
		return errors.New("--watch needs --out: the token is kept fresh in a file")
	}
	var fetch func(context.Context) (string, time.Time, error)
	switch {
	case co.vaultAddr != "":
		f, err := co.vaultFetcher()
		if err != nil {
			return err
		}
		fetch = f
	case co.aws && co.identityTokenFile != "":
		return errors.New("use either --aws or --identity-token-file, not both")
	case co.aws || co.identityTokenFile != "":
		c, err := o.connect()
		if err != nil {
			return err
		}
		defer c.Close()
		fetch = func(ctx context.Context) (string, time.Time, error) { return co.exchange(ctx, cmd, c) }
	default:
		return errors.New("no identity: give --identity-token-file, --aws or --vault-addr")
	}
	if !co.watch {
		tok, exp, err := fetch(cmd.Context())
		if err != nil {
			return err
		}
		if co.out != "" {
			return writeSecretFile(co.out, tok)
		}
		if o.output == outputJSON {
			return printCredsJSON(cmd.OutOrStdout(), tok, exp, co.issuedRole, co.tenant)
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return watchCreds(ctx, cmd, co.out, fetch)
}

// credsJSON is what `creds -o json` prints.
type credsJSON struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expiresAt,omitempty"` // RFC 3339, UTC
	Role      string `json:"role"`
	Tenant    string `json:"tenant"`
}

func printCredsJSON(w io.Writer, tok string, exp time.Time, role, tenant string) error {
	c := credsJSON{Token: tok, Role: role, Tenant: tenant}
	if !exp.IsZero() {
		c.ExpiresAt = exp.UTC().Format(time.RFC3339)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

// exchange presents the identity to the control plane.
func (co *credsOptions) exchange(ctx context.Context, cmd *cobra.Command, c *accessClient) (string, time.Time, error) {
	req := &accessv1.GetCredentialsRequest{Tenant: co.tenant, Role: co.role}
	if co.identityTokenFile != "" {
		b, err := os.ReadFile(co.identityTokenFile)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("read identity token: %w", err)
		}
		req.Proof = &accessv1.GetCredentialsRequest_OidcToken{OidcToken: strings.TrimSpace(string(b))}
	} else {
		cfg, err := call(cmd, c, c.api.GetConfig, &accessv1.GetConfigRequest{})
		if err != nil {
			return "", time.Time{}, err
		}
		if cfg.GetAwsStsEndpoint() == "" {
			return "", time.Time{}, errors.New("the server does not accept AWS identities")
		}
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("load AWS credentials: %w", err)
		}
		sr, err := identity.SignGetCallerIdentity(ctx, awsCfg.Credentials, cfg.GetAwsStsEndpoint(), cfg.GetAwsRegion(), cfg.GetAwsAudience(), time.Now())
		if err != nil {
			return "", time.Time{}, err
		}
		req.Proof = &accessv1.GetCredentialsRequest_Aws{Aws: access.SignedRequestMessage(sr)}
	}
	cred, err := call(cmd, c, c.api.GetCredentials, req)
	if err != nil {
		return "", time.Time{}, err
	}
	co.issuedRole = cred.GetRole()
	return cred.GetToken(), cred.GetExpiresAt().AsTime(), nil
}

// vaultFetcher reads the token the control plane keeps in Vault.
func (co *credsOptions) vaultFetcher() (func(context.Context) (string, time.Time, error), error) {
	tok := co.vaultToken
	if tok == "" && co.vaultTokenFile != "" {
		b, err := os.ReadFile(co.vaultTokenFile)
		if err != nil {
			return nil, fmt.Errorf("read Vault token: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		tok = os.Getenv("VAULT_TOKEN")
	}
	path := co.vaultPath
	if path == "" {
		if co.identity == "" {
			return nil, errors.New("with --vault-addr, give --vault-path or --identity (and --issuer for OIDC)")
		}
		id := identity.Identity{Kind: identity.KindAWS, Subject: co.identity}
		if !strings.HasPrefix(co.identity, "arn:") {
			if co.issuer == "" {
				return nil, errors.New("--issuer is required with an OIDC --identity")
			}
			id = identity.Identity{Kind: identity.KindOIDC, Issuer: co.issuer, Subject: co.identity}
		}
		role, err := access.FullRole(co.tenant, co.role)
		if err != nil {
			return nil, errors.New(status.Convert(err).Message())
		}
		path = vault.PathFor(co.vaultPrefix, co.tenant, role, id.Key())
		co.issuedRole = role
	} else if role, err := access.FullRole(co.tenant, co.role); err == nil {
		co.issuedRole = role
	}
	c, err := vault.New(vault.Config{Address: co.vaultAddr, Token: tok, Mount: co.vaultMount})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (string, time.Time, error) {
		data, err := c.Get(ctx, path)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("vault %s: %w", path, err)
		}
		t, _ := data["token"].(string)
		if t == "" {
			return "", time.Time{}, fmt.Errorf("vault %s holds no token", path)
		}
		exp, _ := time.Parse(time.RFC3339, fmt.Sprint(data["expires_at"]))
		return t, exp, nil
	}, nil
}

// watchCreds keeps out fresh: a new token once two thirds of the current
// one's life have passed; after a failure, retries well before expiry.
func watchCreds(ctx context.Context, cmd *cobra.Command, out string, fetch func(context.Context) (string, time.Time, error)) error {
	var exp time.Time
	for {
		tok, newExp, err := fetch(ctx)
		var wait time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "mb: refreshing credentials failed:", err)
			wait = min(30*time.Second, max(time.Second, time.Until(exp)/10))
		} else {
			if err := writeSecretFile(out, tok); err != nil {
				return err
			}
			exp = newExp
			wait = max(time.Second, time.Until(exp)*2/3)
			fmt.Fprintf(cmd.ErrOrStderr(), "mb: wrote token to %s, valid until %s\n", out, exp.UTC().Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// writeSecretFile replaces path atomically, readable by the owner only, so
// a reader never sees half a token.
func writeSecretFile(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mb-token-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(content + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
