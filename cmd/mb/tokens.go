package main

// `mb tokens`: pulsar tokens' sub-commands. Keys and tokens are
// interchangeable with Pulsar's (see internal/auth/token).

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/messagebus/messagebus/internal/auth/token"
	"github.com/spf13/cobra"
)

func newTokensCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Create keys and JWT tokens, show and validate tokens (like pulsar tokens)",
		Long: `Create and check the JWT tokens of token authentication, interchangeable with
Apache Pulsar's: a token made by 'pulsar tokens create' works with MessageBus
and one made here works with Pulsar.

Keys are given as a file path, a file:///absolute/path URL or an inline
data:;base64,<base64> URL, like Pulsar's tokenSecretKey / tokenPublicKey.
A secret key file holds the raw key bytes (HS256). Key pairs are PKCS#8
private and X.509 public keys, PEM or DER (Pulsar writes DER): RS256 for RSA,
ES256 for ECDSA P-256.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(
		newCreateSecretKeyCommand(),
		newCreateKeyPairCommand(),
		newCreateTokenCommand(),
		newShowTokenCommand(),
		newValidateTokenCommand(),
	)
	return cmd
}

func newCreateSecretKeyCommand() *cobra.Command {
	var (
		output  string
		b64     bool
		force   bool
		algName string
	)
	cmd := &cobra.Command{
		Use:   "create-secret-key",
		Short: "Create a random HS256 secret key",
		Long: `Create a random 256-bit HS256 secret key. It is written raw to --output
(mode 0600), as pulsar tokens create-secret-key does; with --base64 it is
written as base64 text, to --output or to standard output. A base64 key is
used as data:;base64,<text> (a file holding base64 text is taken as raw
bytes, by Pulsar too).`,
		Example: `  mb tokens create-secret-key --output my-secret.key
  mb tokens create-secret-key --base64`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if algName != token.HS256 {
				return fmt.Errorf("unsupported --algorithm %q: only HS256", algName)
			}
			if output == "" && !b64 {
				return errors.New("the raw key is binary: give --output FILE, or --base64 to print it")
			}
			key, err := token.GenerateSecretKey()
			if err != nil {
				return err
			}
			if b64 {
				key = []byte(base64.StdEncoding.EncodeToString(key) + "\n")
			}
			if output == "" {
				_, err := cmd.OutOrStdout().Write(key)
				return err
			}
			return writeNewFile(output, key, 0o600, force)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "", "file to write the key to (mode 0600)")
	f.BoolVarP(&b64, "base64", "b", false, "encode the key in base64")
	f.BoolVar(&force, "force", false, "overwrite an existing file")
	f.StringVarP(&algName, "algorithm", "a", token.HS256, "signature algorithm: HS256")
	f.SetNormalizeFunc(camelAliases(map[string]string{"signature-algorithm": "algorithm"}))
	return cmd
}

func newCreateKeyPairCommand() *cobra.Command {
	var (
		algName, privOut, pubOut, format string
		force                            bool
	)
	cmd := &cobra.Command{
		Use:   "create-key-pair",
		Short: "Create a private/public key pair for RS256 or ES256 tokens",
		Long: `Create a key pair: the private key signs tokens (keep it with whoever issues
them), the public key verifies them (give it to the broker). The private key
is PKCS#8, written with mode 0600; the public key is X.509
SubjectPublicKeyInfo. --format der writes the binary form Pulsar's
create-key-pair writes; PEM (the default) is read by Pulsar only after
conversion (openssl pkey -outform der), while MessageBus reads both.`,
		Example: `  mb tokens create-key-pair --output-private-key my-private.key --output-public-key my-public.key
  mb tokens create-key-pair -a ES256 --output-private-key ec.key --output-public-key ec.pub --format der`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var f token.Format
			switch format {
			case "pem":
				f = token.PEM
			case "der":
				f = token.DER
			default:
				return fmt.Errorf("invalid --format %q: want pem or der", format)
			}
			if privOut == "" || pubOut == "" {
				return errors.New("give both --output-private-key and --output-public-key")
			}
			if filepath.Clean(privOut) == filepath.Clean(pubOut) {
				return errors.New("--output-private-key and --output-public-key must differ")
			}
			priv, err := token.GenerateKeyPair(strings.ToUpper(algName))
			if err != nil {
				return err
			}
			privBytes, err := token.MarshalPrivateKey(priv, f)
			if err != nil {
				return err
			}
			pubBytes, err := token.MarshalPublicKey(priv.Public(), f)
			if err != nil {
				return err
			}
			if !force {
				// Check both before writing either, so a refusal leaves no half pair.
				for _, p := range []string{privOut, pubOut} {
					if _, err := os.Lstat(p); err == nil {
						return fmt.Errorf("%s exists; use --force to overwrite it", p)
					}
				}
			}
			if err := writeNewFile(privOut, privBytes, 0o600, force); err != nil {
				return err
			}
			return writeNewFile(pubOut, pubBytes, 0o644, force)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&algName, "algorithm", "a", token.RS256, "signature algorithm: RS256 (RSA 2048) or ES256 (ECDSA P-256)")
	f.StringVar(&privOut, "output-private-key", "", "file to write the private key to (mode 0600)")
	f.StringVar(&pubOut, "output-public-key", "", "file to write the public key to")
	f.StringVar(&format, "format", "pem", "key file encoding: pem or der")
	f.BoolVar(&force, "force", false, "overwrite existing files")
	f.SetNormalizeFunc(camelAliases(map[string]string{"signature-algorithm": "algorithm"}))
	return cmd
}

func newCreateTokenCommand() *cobra.Command {
	var (
		secretKey, privateKey, subject, expiry, algName string
		headers                                         map[string]string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a token for a role",
		Long: `Create a token whose subject is the role, signed with a secret key (HS256) or
a private key (RS256 for RSA, ES256 for ECDSA P-256), and print it. Without
--expiry-time the token never expires.`,
		Example: `  mb tokens create --secret-key file:///path/to/my-secret.key --subject app-1
  mb tokens create --private-key my-private.key --subject app-1 --expiry-time 30d --headers kid=2026-01`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (secretKey == "") == (privateKey == "") {
				return errors.New("give exactly one of --secret-key and --private-key")
			}
			if subject == "" {
				return errors.New("--subject (the role) is required")
			}
			var key any
			var err error
			if secretKey != "" {
				key, err = token.LoadSecretKey(secretKey)
			} else {
				key, err = token.LoadPrivateKey(privateKey)
			}
			if err != nil {
				return err
			}
			alg, err := token.SigningAlgorithm(key)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("algorithm") && !strings.EqualFold(algName, alg) {
				return fmt.Errorf("--algorithm %s does not match the key, which signs %s", algName, alg)
			}
			c := token.Claims{Subject: subject}
			if expiry != "" {
				d, err := parseRelativeTime(expiry)
				if err != nil {
					return fmt.Errorf("--expiry-time: %w", err)
				}
				if d <= 0 {
					return errors.New("--expiry-time must be positive")
				}
				c.ExpiresAt = time.Now().Add(d)
			}
			if len(headers) > 0 {
				c.Header = map[string]any{}
				for k, v := range headers {
					c.Header[k] = v
				}
			}
			tok, err := token.Create(key, c)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&secretKey, "secret-key", "", "secret key (HS256): path, file:///path or data:;base64,...")
	f.StringVar(&privateKey, "private-key", "", "private key (RS256/ES256): path, file:///path or data:;base64,...")
	f.StringVarP(&subject, "subject", "s", "", "the role the token stands for")
	f.StringVarP(&expiry, "expiry-time", "e", "", "lifetime: 120 (seconds), 30m, 1h, 30d, 1w, 1y; none when absent")
	f.StringToStringVar(&headers, "headers", nil, "extra header fields: key=value (comma-separated or repeated), e.g. kid=2026-01")
	f.StringVarP(&algName, "algorithm", "a", "", "expected algorithm (checked against the key, which decides it)")
	f.SetNormalizeFunc(camelAliases(map[string]string{"signature-algorithm": "algorithm"}))
	return cmd
}

// tokenInput is how show and validate get the token: an argument, "-" or
// --stdin for standard input, or --token-file.
type tokenInput struct {
	file  string
	stdin bool
}

func (in *tokenInput) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&in.file, "token-file", "f", "", "read the token from this file")
	cmd.Flags().BoolVarP(&in.stdin, "stdin", "i", false, "read the token from standard input")
}

func (in *tokenInput) read(cmd *cobra.Command, args []string) (string, error) {
	sources := len(args)
	if in.file != "" {
		sources++
	}
	if in.stdin {
		sources++
	}
	if sources != 1 {
		return "", errors.New("give the token as an argument, - (standard input), --stdin or --token-file")
	}
	var raw []byte
	var err error
	switch {
	case in.file != "":
		raw, err = readLimited(openFile(in.file))
	case in.stdin || args[0] == "-":
		raw, err = readLimited(io.NopCloser(cmd.InOrStdin()), nil)
	default:
		raw = []byte(args[0])
	}
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" {
		return "", errors.New("the token is empty")
	}
	return tok, nil
}

func openFile(path string) (io.ReadCloser, error) { return os.Open(path) }

// readLimited reads a token source, refusing anything much larger than a
// token could be.
func readLimited(r io.ReadCloser, err error) ([]byte, error) {
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 4*token.MaxTokenLength+1))
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	if len(b) > 4*token.MaxTokenLength {
		return nil, fmt.Errorf("read token: more than %d bytes, not a token", 4*token.MaxTokenLength)
	}
	return b, nil
}

func newShowTokenCommand() *cobra.Command {
	var in tokenInput
	cmd := &cobra.Command{
		Use:   "show [TOKEN | -]",
		Short: "Print a token's header and claims as JSON, without checking it",
		Long: `Print a token's header and claims as JSON. Nothing is verified: use validate
to check a token against a key.`,
		Example: `  mb tokens show eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJKb2UifQ.ipevRNuRP6HflG8cFKnmUPtypruRC4fb1DWtoLL62SY
  mb tokens show --token-file app.token`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := in.read(cmd, args)
			if err != nil {
				return err
			}
			header, claims, err := token.Decode(tok)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(struct {
				Header map[string]any `json:"header"`
				Claims map[string]any `json:"claims"`
			}{header, claims}, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return err
		},
	}
	in.register(cmd)
	return cmd
}

func newValidateTokenCommand() *cobra.Command {
	var (
		in                                            tokenInput
		secretKey, publicKey, roleClaim, aud, algName string
	)
	cmd := &cobra.Command{
		Use:   "validate [TOKEN | -]",
		Short: "Check a token against a key and print its role and expiry",
		Long: `Check a token as the broker would: algorithm matching the key, signature,
expiry, not-before and (with --audience) audience. On success print the role
and the expiry; otherwise exit 1 with the reason.`,
		Example: `  mb tokens validate --secret-key my-secret.key eyJhbGciOiJIUzI1NiJ9...
  mb tokens validate --public-key file:///etc/mb/public.key --token-file app.token`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (secretKey == "") == (publicKey == "") {
				return errors.New("give exactly one of --secret-key and --public-key")
			}
			tok, err := in.read(cmd, args)
			if err != nil {
				return err
			}
			cfg := token.Config{RoleClaim: roleClaim, Audience: aud}
			if secretKey != "" {
				cfg.SecretKey, err = token.LoadSecretKey(secretKey)
			} else {
				var pub crypto.PublicKey
				pub, err = token.LoadPublicKey(publicKey)
				cfg.PublicKey = pub
			}
			if err != nil {
				return err
			}
			v, err := token.NewVerifier(cfg)
			if err != nil {
				return err
			}
			if algName != "" && !strings.EqualFold(algName, v.Algorithm()) {
				return fmt.Errorf("--algorithm %s does not match the key, which verifies %s", algName, v.Algorithm())
			}
			got, err := v.Verify(tok, time.Now())
			if err != nil {
				return fmt.Errorf("invalid token: %w", err)
			}
			expires := "never"
			if !got.ExpiresAt.IsZero() {
				expires = got.ExpiresAt.UTC().Format(time.RFC3339) + " (in " + time.Until(got.ExpiresAt).Round(time.Second).String() + ")"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "role: %s\nexpires: %s\n", got.Role, expires)
			return err
		},
	}
	in.register(cmd)
	f := cmd.Flags()
	f.StringVar(&secretKey, "secret-key", "", "secret key (HS256): path, file:///path or data:;base64,...")
	f.StringVar(&publicKey, "public-key", "", "public key (RS256/ES256): path, file:///path or data:;base64,...")
	f.StringVar(&roleClaim, "role-claim", "sub", "claim holding the role")
	f.StringVar(&aud, "audience", "", "require this value in the token's aud claim")
	f.StringVarP(&algName, "algorithm", "a", "", "expected algorithm (checked against the key, which decides it)")
	f.SetNormalizeFunc(camelAliases(map[string]string{"signature-algorithm": "algorithm"}))
	return cmd
}

// writeNewFile writes a key file with perm, refusing to replace an existing
// file unless force: overwriting a key silently invalidates every token
// made with it.
func writeNewFile(path string, data []byte, perm os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, perm)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; use --force to overwrite it", path)
	}
	if err != nil {
		return err
	}
	// An existing file keeps its mode on open; a key must not stay readable.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
