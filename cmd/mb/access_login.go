package main

// `mb access login`: a person logs in with the identity provider and gets a
// token of their tenant's admin role, written with a ready client config.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	accessv1 "github.com/messagebus/messagebus/api/access/v1"
	"github.com/messagebus/messagebus/internal/access/oauthflow"
	"github.com/spf13/cobra"
)

func newAccessLoginCommand(o *accessOptions) *cobra.Command {
	var tenant, dir string
	var device, noBrowser bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in with your identity provider and get a token administering your tenant",
		Long: `Log in through the identity provider the server trusts (OIDC authorization
code with PKCE in your browser, or --device for the device-code flow on
headless machines). Members of the tenant's groups get a short-lived token of
the tenant's admin role.

The token and a client config are written to --config-dir: a Pulsar
client.conf (webServiceUrl, brokerServiceUrl, authPlugin, authParams), the
token file and mb's context.json. The command prints the export line that
points Pulsar tools and mb at them:

  eval "$(mb access login --tenant new_team)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				base, err := os.UserConfigDir()
				if err != nil {
					return fmt.Errorf("no --config-dir and no user config directory: %w", err)
				}
				dir = filepath.Join(base, "mb", tenant)
			}
			return withAccess(o, func(c *accessClient) error {
				cfg, err := call(cmd, c, c.api.GetConfig, &accessv1.GetConfigRequest{})
				if err != nil {
					return err
				}
				if cfg.GetOidcIssuer() == "" || cfg.GetLoginClientId() == "" {
					return errors.New("the server has no login configured (OIDC issuer and client id)")
				}
				flow := oauthflow.Config{Issuer: cfg.GetOidcIssuer(), ClientID: cfg.GetLoginClientId(), Scopes: cfg.GetLoginScopes()}
				stderr := cmd.ErrOrStderr()
				var res oauthflow.Result
				if device {
					res, err = oauthflow.DeviceCode(cmd.Context(), flow, func(uri, code string) error {
						_, err := fmt.Fprintf(stderr, "To log in, visit %s and enter the code %s\n", uri, code)
						return err
					})
				} else {
					res, err = oauthflow.AuthCodePKCE(cmd.Context(), flow, func(authURL string) error {
						fmt.Fprintf(stderr, "Log in in your browser; if it does not open, visit:\n%s\n", authURL)
						if !noBrowser {
							openBrowser(authURL)
						}
						return nil
					})
				}
				if err != nil {
					return fmt.Errorf("login: %w", err)
				}
				cred, err := call(cmd, c, c.api.Login, &accessv1.LoginRequest{Tenant: tenant, IdToken: res.IDToken})
				if err != nil {
					return err
				}
				exports, err := writeClientConfig(dir, o.url, cfg, cred)
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "Logged in as %s until %s; config in %s\n", cred.GetRole(), formatTime(cred.GetExpiresAt()), dir)
				_, err = fmt.Fprintln(cmd.OutOrStdout(), exports)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant to administer")
	cmd.Flags().BoolVar(&device, "device", false, "use the device-code flow (for machines without a browser)")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "print the login URL instead of opening a browser")
	cmd.Flags().StringVar(&dir, "config-dir", "", "where to write the token and client config (default: <user config dir>/mb/<tenant>)")
	cmd.MarkFlagRequired("tenant")
	return cmd
}

// openBrowser tries the platform's opener; the URL is printed anyway.
func openBrowser(url string) {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	if cmd := exec.Command(name, url); cmd.Start() == nil {
		go cmd.Wait()
	}
}

// clientContext is mb's own context file.
type clientContext struct {
	Tenant     string    `json:"tenant"`
	Role       string    `json:"role"`
	AccessURL  string    `json:"accessUrl"`
	AdminURL   string    `json:"adminUrl"`
	ServiceURL string    `json:"serviceUrl"`
	TokenFile  string    `json:"tokenFile"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// writeClientConfig writes the token, a Pulsar client.conf and mb's
// context, and returns the export line that uses them.
func writeClientConfig(dir, accessURL string, cfg *accessv1.Config, cred *accessv1.Credentials) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := writeSecretFile(tokenFile, cred.GetToken()); err != nil {
		return "", err
	}
	conf := fmt.Sprintf("# Written by mb access login for %s.\nwebServiceUrl=%s\nbrokerServiceUrl=%s\n"+
		"authPlugin=org.apache.pulsar.client.impl.auth.AuthenticationToken\nauthParams=file://%s\n",
		cred.GetRole(), cfg.GetWebServiceUrl(), cfg.GetBrokerServiceUrl(), tokenFile)
	confFile := filepath.Join(dir, "client.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return "", err
	}
	ctxJSON, err := json.MarshalIndent(clientContext{
		Tenant: cred.GetTenant(), Role: cred.GetRole(), AccessURL: accessURL, AdminURL: cfg.GetWebServiceUrl(),
		ServiceURL: cfg.GetBrokerServiceUrl(), TokenFile: tokenFile, ExpiresAt: cred.GetExpiresAt().AsTime(),
	}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "context.json"), append(ctxJSON, '\n'), 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf("export PULSAR_CLIENT_CONF=%s MB_ADMIN_URL=%s MB_SERVICE_URL=%s MB_ACCESS_URL=%s MB_AUTH_TOKEN_FILE=%s",
		confFile, cfg.GetWebServiceUrl(), cfg.GetBrokerServiceUrl(), accessURL, tokenFile), nil
}
