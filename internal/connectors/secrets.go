package connectors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Secret settings (passwords, keys) are never stored or shown: a config
// holds a reference, "env:NAME" (the node's environment variable),
// "file:/path" (the file's contents, trailing newline removed) or
// "vault:<path>#<field>" (a field of a Vault KV v2 secret, read through the
// Vault the access plane uses), either in Secrets or as the setting's value
// in Configs. A plain value of a setting the connector declares secret is
// refused.

// VaultReader reads a KV v2 secret (internal/access/vault.Client).
type VaultReader interface {
	Get(ctx context.Context, path string) (map[string]any, error)
}

const refForms = "env:NAME, file:/path or vault:<path>#<field>"

func isReference(v string) bool {
	return strings.HasPrefix(v, "env:") || strings.HasPrefix(v, "file:") || strings.HasPrefix(v, "vault:")
}

// checkRef refuses a reference that can never resolve.
func checkRef(ref string) error {
	if !isReference(ref) {
		return fmt.Errorf("want a reference, %s", refForms)
	}
	if strings.HasPrefix(ref, "vault:") {
		_, _, err := parseVaultRef(ref)
		return err
	}
	if len(ref) == strings.IndexByte(ref, ':')+1 {
		return fmt.Errorf("reference %q names nothing", ref)
	}
	return nil
}

// parseVaultRef splits "vault:<path>#<field>": path relative to the KV v2
// mount (as the access plane's --vault-mount), field a key of its data.
func parseVaultRef(ref string) (path, field string, err error) {
	rest := strings.TrimPrefix(ref, "vault:")
	path, field, ok := strings.Cut(rest, "#")
	path = strings.Trim(path, "/")
	if !ok || path == "" || field == "" {
		return "", "", fmt.Errorf("vault reference %q: want vault:<path>#<field>, such as vault:teams/shop/pg#password", ref)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", fmt.Errorf("vault reference %q: empty, '.' or '..' path segment", ref)
		}
	}
	if strings.ContainsAny(path, "?%\\") || strings.IndexFunc(rest, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return "", "", fmt.Errorf("vault reference %q: the path contains '?', '%%', '\\' or a control character", ref)
	}
	return path, field, nil
}

func checkSecrets(b *Builtin, c *Config) error {
	for k, ref := range c.Secrets {
		if err := checkRef(ref); err != nil {
			return fmt.Errorf("secret %q: %w", k, err)
		}
	}
	for _, k := range b.SecretKeys {
		v, ok := c.Configs[k]
		if !ok {
			continue
		}
		s, isStr := v.(string)
		if !isStr || !isReference(s) {
			return fmt.Errorf("config %q is a secret: give a reference (%s), in configs or secrets, not the value", k, refForms)
		}
		if err := checkRef(s); err != nil {
			return fmt.Errorf("config %q: %w", k, err)
		}
	}
	return nil
}

// resolveRef reads a reference. Errors name the reference, never a value.
func resolveRef(ctx context.Context, ref string, v VaultReader) (string, error) {
	switch {
	case strings.HasPrefix(ref, "env:"):
		name := strings.TrimPrefix(ref, "env:")
		v, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("secret reference %s: the environment variable %s is not set on this node", ref, name)
		}
		return v, nil
	case strings.HasPrefix(ref, "file:"):
		b, err := os.ReadFile(strings.TrimPrefix(ref, "file:"))
		if err != nil {
			return "", fmt.Errorf("secret reference %s: %w", ref, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case strings.HasPrefix(ref, "vault:"):
		return resolveVault(ctx, ref, v)
	}
	return ref, nil
}

func resolveVault(ctx context.Context, ref string, v VaultReader) (string, error) {
	path, field, err := parseVaultRef(ref)
	if err != nil {
		return "", err
	}
	if v == nil {
		return "", fmt.Errorf("secret reference %s: this node has no Vault (start mb with --vault-addr and a Vault token)", ref)
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	data, err := v.Get(ctx, path)
	if err != nil {
		return "", fmt.Errorf("secret reference %s: %w", ref, err)
	}
	val, ok := data[field]
	if !ok {
		return "", fmt.Errorf("secret reference %s: the secret has no field %q", ref, field)
	}
	s, ok := val.(string)
	if !ok {
		return "", fmt.Errorf("secret reference %s: field %q is not a string", ref, field)
	}
	return s, nil
}

// resolvedConfigs is c.Configs with references of secret keys and Secrets
// resolved: what an instance is given.
func resolvedConfigs(ctx context.Context, b *Builtin, c *Config, v VaultReader) (map[string]any, error) {
	out := make(map[string]any, len(c.Configs)+len(c.Secrets))
	for k, v := range c.Configs {
		out[k] = v
	}
	var errs []error
	for _, k := range b.SecretKeys {
		if s, ok := out[k].(string); ok && isReference(s) {
			val, err := resolveRef(ctx, s, v)
			errs = append(errs, err)
			out[k] = val
		}
	}
	for k, ref := range c.Secrets {
		val, err := resolveRef(ctx, ref, v)
		errs = append(errs, err)
		out[k] = val
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
