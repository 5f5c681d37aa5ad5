package vault

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// PathFor derives the KV path (relative to the mount) where the token of
// an association is delivered:
//
//	<prefix>/<tenant>/<role>/<identity>-<hash>
//
// Every segment keeps only [A-Za-z0-9._-]; other characters become "_".
// <prefix> may have several segments ("" leaves it out). <identity> is the
// identity key (identity.Identity.Key, such as
// "aws:arn:aws:iam::123456789012:role/app" or
// "oidc:https://issuer#system:serviceaccount:ns:app") made readable that way,
// runs of "_" collapsed and cut to 64 characters, so an operator can tell
// whose token a path holds. <hash> is the first 16 hex digits of
// SHA-256(tenant NUL role NUL identityKey): two associations that sanitise
// to the same text still get different paths. For example
//
//	PathFor("messagebus", "my_team", "my_team.app", "aws:arn:aws:iam::123456789012:role/app")
//	= "messagebus/my_team/my_team.app/aws_arn_aws_iam_123456789012_role_app-<16 hex>"
//
// A Vault policy can then grant a workload read access to
// "<mount>/data/<prefix>/<tenant>/<role>/*".
func PathFor(prefix, tenant, role, identityKey string) string {
	var segs []string
	for _, p := range strings.Split(prefix, "/") {
		if p != "" {
			segs = append(segs, segment(p, 64))
		}
	}
	segs = append(segs, segment(tenant, 64), segment(role, 128))

	sum := sha256.Sum256([]byte(tenant + "\x00" + role + "\x00" + identityKey))
	hash := hex.EncodeToString(sum[:])[:16]
	readable := strings.Trim(collapse(sanitize(identityKey), '_'), "_.-")
	if len(readable) > 64 {
		readable = strings.TrimRight(readable[:64], "_.-")
	}
	if readable == "" {
		segs = append(segs, hash)
	} else {
		segs = append(segs, readable+"-"+hash)
	}
	return strings.Join(segs, "/")
}

// segment sanitises s into one path segment of at most max bytes that is
// never empty, "." or "..".
func segment(s string, max int) string {
	s = sanitize(s)
	if len(s) > max {
		s = s[:max]
	}
	if s == "" || strings.Trim(s, ".") == "" {
		return "_" + s
	}
	return s
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
}

func collapse(s string, c byte) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == c && i > 0 && s[i-1] == c {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
