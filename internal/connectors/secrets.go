package connectors

import (
	"fmt"
	"os"
	"strings"
)

// Secret settings (passwords, keys) are never stored or shown: a config
// holds a reference, "env:NAME" (the node's environment variable) or
// "file:/path" (the file's contents, trailing newline removed), either in
// Secrets or as the setting's value in Configs. A plain value of a
// setting the connector declares secret is refused.

func isReference(v string) bool {
	return strings.HasPrefix(v, "env:") || strings.HasPrefix(v, "file:")
}

func checkSecrets(b *Builtin, c *Config) error {
	for k, ref := range c.Secrets {
		if !isReference(ref) {
			return fmt.Errorf("secret %q: want a reference, env:NAME or file:/path", k)
		}
	}
	for _, k := range b.SecretKeys {
		v, ok := c.Configs[k]
		if !ok {
			continue
		}
		s, isStr := v.(string)
		if !isStr || !isReference(s) {
			return fmt.Errorf("config %q is a secret: give a reference (env:NAME or file:/path), in configs or secrets, not the value", k)
		}
	}
	return nil
}

// resolveRef reads a reference.
func resolveRef(ref string) (string, error) {
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
	}
	return ref, nil
}

// resolvedConfigs is c.Configs with references of secret keys and Secrets
// resolved: what an instance is given.
func resolvedConfigs(b *Builtin, c *Config) (map[string]any, error) {
	out := make(map[string]any, len(c.Configs)+len(c.Secrets))
	for k, v := range c.Configs {
		out[k] = v
	}
	for _, k := range b.SecretKeys {
		if s, ok := out[k].(string); ok && isReference(s) {
			v, err := resolveRef(s)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
	}
	for k, ref := range c.Secrets {
		v, err := resolveRef(ref)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}
