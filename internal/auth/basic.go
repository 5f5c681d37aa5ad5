package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/GehirnInc/crypt"
	_ "github.com/GehirnInc/crypt/apr1_crypt" // $apr1$, what htpasswd -m writes and Pulsar reads
	_ "github.com/GehirnInc/crypt/md5_crypt"
	_ "github.com/GehirnInc/crypt/sha256_crypt"
	_ "github.com/GehirnInc/crypt/sha512_crypt"
	"golang.org/x/crypto/bcrypt"
)

// MethodBasic is Pulsar's AuthenticationProviderBasic: user and password
// checked against a file of hashed passwords.
const MethodBasic = "basic"

// errBasicRefused is the one refusal for an unknown user and a wrong
// password, as in Pulsar, so the answer does not tell which users exist.
var errBasicRefused = fmt.Errorf("%w: unknown user or invalid password", ErrUnauthenticated)

// dummyAPR1 is checked against for unknown users.
const dummyAPR1 = "$apr1$mbdummy0$IJ6p/UjsVeovFl4seIXSr."

// BasicUsers maps user names to password hashes, as in an htpasswd file.
type BasicUsers map[string]string

// LoadBasicUsers reads the users of basic authentication from conf, given
// as Pulsar's basicAuthConf is: a file path, a file: or data: URL, or the
// file's content in base64. Each line is "user:hash"; empty lines and lines
// starting with # are skipped. Hashes are $apr1$ (htpasswd -m), $1$, $5$,
// $6$ (crypt(3) MD5, SHA-256, SHA-512) or bcrypt ($2a$, $2b$, $2y$;
// htpasswd -B). Legacy DES crypt hashes are refused.
func LoadBasicUsers(conf string) (BasicUsers, error) {
	data, err := readBasicConf(conf)
	if err != nil {
		return nil, fmt.Errorf("basic auth conf: %w", err)
	}
	return ParseBasicUsers(data)
}

func readBasicConf(conf string) ([]byte, error) {
	switch {
	case conf == "":
		return nil, errors.New("empty")
	case strings.HasPrefix(conf, "file:"):
		u, err := url.Parse(conf)
		if err != nil {
			return nil, err
		}
		return os.ReadFile(u.Path)
	case strings.HasPrefix(conf, "data:"):
		_, payload, ok := strings.Cut(conf, ",")
		if !ok {
			return nil, errors.New("data: URL without a comma")
		}
		if strings.Contains(conf[:len(conf)-len(payload)], ";base64") {
			return base64.StdEncoding.DecodeString(payload)
		}
		s, err := url.PathUnescape(payload)
		return []byte(s), err
	}
	if _, err := os.Stat(conf); err == nil {
		return os.ReadFile(conf)
	}
	b, err := base64.StdEncoding.DecodeString(conf)
	if err != nil {
		return nil, fmt.Errorf("%q is neither a file, a file:/data: URL nor base64", clipKID(conf))
	}
	return b, nil
}

// ParseBasicUsers parses an htpasswd-style file (see LoadBasicUsers).
func ParseBasicUsers(data []byte) (BasicUsers, error) {
	users := BasicUsers{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" || strings.Contains(hash, ":") {
			return nil, fmt.Errorf("basic auth conf line %d: want user:hash", i+1)
		}
		if !hashSupported(hash) {
			return nil, fmt.Errorf("basic auth conf line %d (user %q): hash scheme not supported: use $apr1$ (htpasswd -m), bcrypt (htpasswd -B) or $1$/$5$/$6$ crypt; DES crypt is not", i+1, user)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("basic auth conf line %d: user %q listed twice", i+1, user)
		}
		users[user] = hash
	}
	if len(users) == 0 {
		return nil, errors.New("basic auth conf lists no users")
	}
	return users, nil
}

func isBcrypt(hash string) bool {
	return strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$") || strings.HasPrefix(hash, "$2y$")
}

func hashSupported(hash string) bool {
	return isBcrypt(hash) || crypt.IsHashSupported(hash)
}

// check reports whether password matches user's hash.
func (u BasicUsers) check(user, password string) bool {
	hash, ok := u[user]
	if !ok {
		// About the work of a wrong $apr1$ password, so timing tells
		// little about which users exist.
		_ = crypt.NewFromHash(dummyAPR1).Verify(dummyAPR1, []byte(password))
		return false
	}
	if isBcrypt(hash) {
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
	}
	c := crypt.NewFromHash(hash)
	if c == nil {
		return false
	}
	return c.Verify(hash, []byte(password)) == nil
}

// authenticateBasic checks "user:password" (CONNECT's auth data, or the
// decoded HTTP Basic credentials).
func (s *Service) authenticateBasic(userPass string) (Principal, error) {
	if len(s.cfg.BasicUsers) == 0 {
		return Principal{}, fmt.Errorf("%w: auth method \"basic\" is not supported on this server: basic authentication is not configured (--basic-auth-conf)", ErrUnauthenticated)
	}
	user, pass, ok := strings.Cut(userPass, ":")
	if !ok || user == "" {
		return Principal{}, fmt.Errorf("%w: basic credentials must be user:password", ErrUnauthenticated)
	}
	if !s.cfg.BasicUsers.check(user, pass) {
		return Principal{}, errBasicRefused
	}
	return Principal{Role: user, Method: MethodBasic}, nil
}

// authenticateBasicHeader decodes "Basic base64(user:password)".
func (s *Service) authenticateBasicHeader(encoded string) (Principal, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return Principal{}, fmt.Errorf("%w: basic credentials are not base64", ErrUnauthenticated)
	}
	return s.authenticateBasic(string(b))
}
