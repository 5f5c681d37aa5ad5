package auth

import (
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Hashes written by `openssl passwd` and `htpasswd` (password "s3cret";
// the $apr1$ line is pulsar-client-go's integration-tests/conf/.htpasswd,
// password "123456").
const basicFile = `# users
admin:$apr1$FG4AO6aX$KGYPuMoLUou3i6vUkPUUf.
md5:$1$abc$dPsF0HDVjaO430ypNfqhr.
sha512:$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1

`

func basicService(t *testing.T, extra string) *Service {
	t.Helper()
	users, err := ParseBasicUsers([]byte(basicFile + extra))
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{BasicUsers: users})
}

func TestBasicAuthHashSchemes(t *testing.T) {
	bc, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s := basicService(t, "bcrypt:"+string(bc)+"\n")
	for _, c := range []struct {
		user, pass string
		ok         bool
	}{
		{"admin", "123456", true},
		{"admin", "1234567", false},
		{"md5", "s3cret", true},
		{"md5", "S3cret", false},
		{"sha512", "s3cret", true},
		{"sha512", "", false},
		{"bcrypt", "s3cret", true},
		{"bcrypt", "s3cre", false},
		{"nobody", "s3cret", false},
	} {
		p, err := s.Authenticate(MethodBasic, []byte(c.user+":"+c.pass), nil)
		if c.ok && (err != nil || p.Role != c.user || p.Method != MethodBasic) {
			t.Errorf("%s/%s: %+v %v, want role %s", c.user, c.pass, p, err, c.user)
		}
		if !c.ok && (err == nil || !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "unknown user or invalid password")) {
			t.Errorf("%s/%s: %+v %v, want the refusal", c.user, c.pass, p, err)
		}
	}
	if _, err := s.Authenticate(MethodBasic, []byte("no-colon"), nil); err == nil || !strings.Contains(err.Error(), "user:password") {
		t.Errorf("credentials without a colon: %v", err)
	}
}

func TestBasicAuthHTTP(t *testing.T) {
	s := basicService(t, "")
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:123456")))
	if p, err := s.AuthenticateHTTP(r); err != nil || p.Role != "admin" {
		t.Fatalf("Basic admin:123456: %+v %v", p, err)
	}
	r.SetBasicAuth("admin", "wrong")
	if _, err := s.AuthenticateHTTP(r); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	r.Header.Set("Authorization", "Basic %%%")
	if _, err := s.AuthenticateHTTP(r); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Fatalf("bad base64: %v", err)
	}
	// Without basic authentication configured, Basic is not a scheme.
	tokOnly := New(Config{TLS: true})
	r.SetBasicAuth("admin", "123456")
	if _, err := tokOnly.AuthenticateHTTP(r); err == nil {
		t.Fatal("Basic accepted without basic authentication configured")
	}
	if _, err := tokOnly.Authenticate(MethodBasic, []byte("admin:123456"), nil); err == nil || !strings.Contains(err.Error(), "--basic-auth-conf") {
		t.Fatalf("basic on the binary protocol without a conf: %v", err)
	}
}

func TestParseBasicUsersRefusesBadFiles(t *testing.T) {
	for name, c := range map[string]struct{ file, want string }{
		"DES crypt":    {"old:abJnggxhB/yWI\n", "DES crypt is not"},
		"no colon":     {"admin\n", "line 1: want user:hash"},
		"empty user":   {":$apr1$x$y\n", "want user:hash"},
		"empty hash":   {"admin:\n", "want user:hash"},
		"duplicate":    {"a:$1$abc$dPsF0HDVjaO430ypNfqhr.\na:$1$abc$dPsF0HDVjaO430ypNfqhr.\n", "listed twice"},
		"no users":     {"# nothing\n\n", "no users"},
		"plain text":   {"admin:secret\n", "hash scheme not supported"},
		"third column": {"admin:$1$abc$x:extra\n", "want user:hash"},
	} {
		if _, err := ParseBasicUsers([]byte(c.file)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
		}
	}
}

func TestLoadBasicUsersForms(t *testing.T) {
	const line = "admin:$apr1$FG4AO6aX$KGYPuMoLUou3i6vUkPUUf.\n"
	path := filepath.Join(t.TempDir(), ".htpasswd")
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(line))
	for _, conf := range []string{path, "file://" + path, "data:;base64," + b64, b64} {
		u, err := LoadBasicUsers(conf)
		if err != nil || !u.check("admin", "123456") {
			t.Errorf("%q: %v %v", conf, u, err)
		}
	}
	for _, conf := range []string{"", "/no/such/file", "data:nocomma", "file:///no/such/file"} {
		if _, err := LoadBasicUsers(conf); err == nil {
			t.Errorf("%q loaded", conf)
		}
	}
}

func FuzzParseBasicUsers(f *testing.F) {
	f.Add([]byte(basicFile))
	f.Add([]byte("a:b:c\n\r\n#x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		users, err := ParseBasicUsers(data)
		if err == nil && len(users) == 0 {
			t.Fatal("no error and no users")
		}
		s := New(Config{BasicUsers: users})
		if s != nil {
			_, _ = s.Authenticate(MethodBasic, data, nil)
		}
	})
}
