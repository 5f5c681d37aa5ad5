package identity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/messagebus/messagebus/internal/testutil/ststest"
)

const (
	testAccount  = "123456789012"
	testAudience = "messagebus-test"
	userKey      = "AKIDUSER"
	userSecret   = "user-secret-key"
	userARN      = "arn:aws:iam::123456789012:user/alice"
	roleKey      = "ASIAROLE"
	roleSecret   = "role-secret-key"
	roleToken    = "role-session-token"
	sessionARN   = "arn:aws:sts::123456789012:assumed-role/my-app/i-0abc123"
	roleARN      = "arn:aws:iam::123456789012:role/my-app"
)

type awsFixture struct {
	sts *ststest.Server
	v   *AWSVerifier
}

func newAWSFixture(t *testing.T, cfg AWSConfig) *awsFixture {
	t.Helper()
	sts := ststest.New(t)
	sts.AddCredentials(userKey, userSecret, userARN)
	sts.AddSessionCredentials(roleKey, roleSecret, roleToken, sessionARN)
	if cfg.STSEndpoint == "" {
		cfg.STSEndpoint = sts.Endpoint()
	}
	if cfg.Audience == "" {
		cfg.Audience = testAudience
	}
	return &awsFixture{sts: sts, v: NewAWSVerifier(cfg)}
}

func static(key, secret, token string) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: key, SecretAccessKey: secret, SessionToken: token}, nil
	})
}

// sign signs for the fixture's STS and carries the request through JSON, as
// the gRPC API does.
func (f *awsFixture) sign(t *testing.T, creds aws.CredentialsProvider, audience string, at time.Time) SignedRequest {
	t.Helper()
	req, err := SignGetCallerIdentity(context.Background(), creds, f.sts.Endpoint(), "", audience, at)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var out SignedRequest
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// noSecrets fails when err's message carries a secret of the request.
func noSecrets(t *testing.T, err error, req SignedRequest) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	secrets := []string{userSecret, roleSecret, roleToken}
	if a, perr := parseSigV4(http.Header(req.Header)); perr == nil {
		secrets = append(secrets, a.signature)
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("error message %q contains a secret", msg)
		}
	}
}

func TestAWSRoundTripUser(t *testing.T) {
	f := newAWSFixture(t, AWSConfig{})
	now := time.Now()
	req := f.sign(t, static(userKey, userSecret, ""), testAudience, now)
	id, err := f.v.Verify(context.Background(), req)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.Kind != KindAWS || id.Subject != userARN || id.Issuer != "" {
		t.Errorf("identity = %+v, want AWS %s", id, userARN)
	}
	if want := now.UTC().Truncate(time.Second).Add(15 * time.Minute); !id.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %v, want %v", id.ExpiresAt, want)
	}
	if id.Key() != "aws:"+userARN {
		t.Errorf("Key = %q", id.Key())
	}
	if f.sts.Requests() != 1 {
		t.Errorf("STS requests = %d, want 1", f.sts.Requests())
	}
}

func TestAWSAssumedRoleMapsToRole(t *testing.T) {
	f := newAWSFixture(t, AWSConfig{})
	req := f.sign(t, static(roleKey, roleSecret, roleToken), testAudience, time.Now())
	if got := req.Header["X-Amz-Security-Token"]; len(got) != 1 {
		t.Fatalf("session token header = %v", got)
	}
	id, err := f.v.Verify(context.Background(), req)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.Subject != roleARN || id.Key() != "aws:"+roleARN {
		t.Errorf("Subject = %q, Key = %q, want role %s", id.Subject, id.Key(), roleARN)
	}
}

func TestPrincipalARN(t *testing.T) {
	for _, c := range []struct {
		arn, account, want string
		ok                 bool
	}{
		{sessionARN, testAccount, roleARN, true},
		{"arn:aws-cn:sts::123456789012:assumed-role/r/s", "", "arn:aws-cn:iam::123456789012:role/r", true},
		{userARN, testAccount, userARN, true},
		{"arn:aws:iam::123456789012:root", testAccount, "arn:aws:iam::123456789012:root", true},
		{"arn:aws:sts::123456789012:federated-user/bob", testAccount, "arn:aws:sts::123456789012:federated-user/bob", true},
		{sessionARN, "999999999999", "", false},
		{"arn:aws:sts::123456789012:assumed-role/", "", "", false},
		{"arn:aws:s3:::bucket", "", "", false},
		{"arn:aws:iam::12345:user/x", "", "", false},
		{"not-an-arn", "", "", false},
	} {
		got, err := principalARN(c.arn, c.account)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("principalARN(%q, %q) = %q, %v; want %q, ok=%v", c.arn, c.account, got, err, c.want, c.ok)
		}
	}
}

func TestAWSWrongSecret(t *testing.T) {
	f := newAWSFixture(t, AWSConfig{})
	req := f.sign(t, static(userKey, "not-the-secret", ""), testAudience, time.Now())
	_, err := f.v.Verify(context.Background(), req)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("err = %v, want ErrInvalid with STS's SignatureDoesNotMatch", err)
	}
	noSecrets(t, err, req)

	// A refused signature is not "used": presenting it again asks STS
	// again instead of reporting a replay, and the cache stays empty.
	_, err = f.v.Verify(context.Background(), req)
	if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrReplay) {
		t.Fatalf("second err = %v, want ErrInvalid", err)
	}
	if n := len(f.v.seen) + len(f.v.expiry); n != 0 {
		t.Errorf("replay cache holds %d entries after refusals", n)
	}
}

func TestAWSUnknownKeyAndExpiredToken(t *testing.T) {
	f := newAWSFixture(t, AWSConfig{})
	req := f.sign(t, static("AKIDUNKNOWN", "x", ""), testAudience, time.Now())
	if _, err := f.v.Verify(context.Background(), req); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "InvalidClientTokenId") {
		t.Errorf("unknown key: err = %v", err)
	}

	f.sts.ExpireCredentials(roleKey)
	req = f.sign(t, static(roleKey, roleSecret, roleToken), testAudience, time.Now())
	_, err := f.v.Verify(context.Background(), req)
	if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "security token included in the request is expired") {
		t.Errorf("expired session: err = %v, want ErrExpired with STS's message", err)
	}
	noSecrets(t, err, req)
}

func TestAWSTampered(t *testing.T) {
	for _, c := range []struct {
		name   string
		tamper func(*SignedRequest)
		local  bool // refused before STS is asked
	}{
		{"body reordered", func(r *SignedRequest) { r.Body = []byte("Version=2011-06-15&Action=GetCallerIdentity") }, false},
		{"body other action", func(r *SignedRequest) { r.Body = []byte("Action=AssumeRole&Version=2011-06-15") }, true},
		{"body extra parameter", func(r *SignedRequest) { r.Body = append(r.Body, "&RoleArn=x"...) }, true},
		{"date moved", func(r *SignedRequest) {
			d, _ := time.Parse("20060102T150405Z", r.Header["X-Amz-Date"][0])
			r.Header["X-Amz-Date"] = []string{d.Add(-time.Second).Format("20060102T150405Z")}
		}, false},
		{"signed header changed", func(r *SignedRequest) {
			r.Header["Content-Type"] = []string{"application/json"}
		}, false},
		{"signature changed", func(r *SignedRequest) {
			a := r.Header["Authorization"][0]
			i := strings.LastIndex(a, "=") + 1
			flip := "0"
			if a[i] == '0' {
				flip = "1"
			}
			r.Header["Authorization"] = []string{a[:i] + flip + a[i+1:]}
		}, false},
		{"url path", func(r *SignedRequest) { r.URL += "other" }, true},
		{"url query", func(r *SignedRequest) { r.URL += "?Action=AssumeRole" }, true},
		{"method", func(r *SignedRequest) { r.Method = http.MethodGet }, true},
		{"no authorization", func(r *SignedRequest) { delete(r.Header, "Authorization") }, true},
		{"not sigv4", func(r *SignedRequest) { r.Header["Authorization"] = []string{"Bearer abc"} }, true},
		{"no date", func(r *SignedRequest) { delete(r.Header, "X-Amz-Date") }, true},
		{"two dates", func(r *SignedRequest) {
			r.Header["X-Amz-Date"] = append(r.Header["X-Amz-Date"], r.Header["X-Amz-Date"][0])
		}, true},
		{"header injection", func(r *SignedRequest) { r.Header["X-Evil"] = []string{"a\r\nHost: evil"} }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newAWSFixture(t, AWSConfig{})
			req := f.sign(t, static(userKey, userSecret, ""), testAudience, time.Now())
			c.tamper(&req)
			_, err := f.v.Verify(context.Background(), req)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			noSecrets(t, err, req)
			if got, want := f.sts.Requests(), map[bool]int{true: 0, false: 1}[c.local]; got != want {
				t.Errorf("STS requests = %d, want %d", got, want)
			}
		})
	}
}

func TestAWSEndpointMismatchNeverForwards(t *testing.T) {
	// The workload signs for a server it controls; the verifier must
	// neither accept that nor send anything to it (SSRF).
	var other sync.Mutex
	hits := 0
	evil := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		other.Lock()
		hits++
		other.Unlock()
	}))
	defer evil.Close()

	f := newAWSFixture(t, AWSConfig{})
	req, err := SignGetCallerIdentity(context.Background(), static(userKey, userSecret, ""), evil.URL+"/", "", testAudience, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.v.Verify(context.Background(), req)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), f.sts.Endpoint()) {
		t.Fatalf("err = %v, want ErrInvalid naming the configured endpoint", err)
	}
	other.Lock()
	defer other.Unlock()
	if hits != 0 || f.sts.Requests() != 0 {
		t.Errorf("requests: evil %d, STS %d; want none", hits, f.sts.Requests())
	}
}

func TestAWSRedirectNotFollowed(t *testing.T) {
	f := newAWSFixture(t, AWSConfig{})
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, f.sts.Endpoint(), http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	v := NewAWSVerifier(AWSConfig{STSEndpoint: redirector.URL + "/", Audience: testAudience, HTTPClient: &http.Client{}})
	req, err := SignGetCallerIdentity(context.Background(), static(userKey, userSecret, ""), redirector.URL+"/", "", testAudience, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), req); err == nil {
		t.Fatal("Verify succeeded through a redirect")
	}
	if f.sts.Requests() != 0 {
		t.Errorf("redirect was followed: STS requests = %d", f.sts.Requests())
	}
}

func TestAWSEndpointEquivalentForms(t *testing.T) {
	for _, c := range []struct {
		got, want string
		same      bool
	}{
		{"https://sts.amazonaws.com/", "https://sts.amazonaws.com/", true},
		{"https://sts.amazonaws.com", "https://sts.amazonaws.com/", true},
		{"HTTPS://STS.amazonaws.com/", "https://sts.amazonaws.com/", true},
		{"https://sts.amazonaws.com/?", "https://sts.amazonaws.com/", false},
		{"https://user@sts.amazonaws.com/", "https://sts.amazonaws.com/", false},
		{"https://sts.amazonaws.com.evil.example/", "https://sts.amazonaws.com/", false},
		{"http://sts.amazonaws.com/", "https://sts.amazonaws.com/", false},
		{"https://sts.amazonaws.com:8443/", "https://sts.amazonaws.com/", false},
		{"https://sts.amazonaws.com/#x", "https://sts.amazonaws.com/", false},
	} {
		if got := sameEndpoint(c.got, c.want); got != c.same {
			t.Errorf("sameEndpoint(%q, %q) = %v, want %v", c.got, c.want, got, c.same)
		}
	}
}

func TestAWSDateWindow(t *testing.T) {
	signedAt := time.Now().Add(-time.Hour)
	for _, c := range []struct {
		name string
		now  time.Time
		want error
	}{
		{"too old", signedAt.Add(5*time.Minute + 2*time.Second), ErrExpired},
		{"in the future", signedAt.Add(-5*time.Minute - 2*time.Second), ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newAWSFixture(t, AWSConfig{Now: func() time.Time { return c.now }})
			req := f.sign(t, static(userKey, userSecret, ""), testAudience, signedAt)
			_, err := f.v.Verify(context.Background(), req)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if f.sts.Requests() != 0 {
				t.Errorf("STS was asked about a request outside the window")
			}
		})
	}

	// Inside a custom window the same request is accepted (STS still
	// checks its own 15-minute lifetime against its clock).
	f := newAWSFixture(t, AWSConfig{MaxSkew: 2 * time.Hour})
	f.sts.SetNow(func() time.Time { return signedAt.Add(time.Minute) })
	req := f.sign(t, static(userKey, userSecret, ""), testAudience, signedAt)
	if _, err := f.v.Verify(context.Background(), req); err != nil {
		t.Fatalf("Verify inside window: %v", err)
	}
}

func TestAWSSTSSignatureExpired(t *testing.T) {
	// The verifier's window is wider than STS's lifetime; STS's refusal
	// of an old signature maps to ErrExpired.
	signedAt := time.Now().Add(-20 * time.Minute)
	f := newAWSFixture(t, AWSConfig{MaxSkew: time.Hour})
	req := f.sign(t, static(userKey, userSecret, ""), testAudience, signedAt)
	if _, err := f.v.Verify(context.Background(), req); !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "Signature expired") {
		t.Fatalf("err = %v, want ErrExpired from STS", err)
	}
}

func TestAWSAudience(t *testing.T) {
	for _, c := range []struct {
		name     string
		audience string
		tamper   func(*SignedRequest)
	}{
		{"missing", "", nil},
		{"other service", "another-service", nil},
		{"added after signing", "", func(r *SignedRequest) { r.Header[AudienceHeader] = []string{testAudience} }},
		{"duplicated", testAudience, func(r *SignedRequest) { r.Header[AudienceHeader] = append(r.Header[AudienceHeader], "x") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newAWSFixture(t, AWSConfig{})
			req := f.sign(t, static(userKey, userSecret, ""), c.audience, time.Now())
			if c.tamper != nil {
				c.tamper(&req)
			}
			_, err := f.v.Verify(context.Background(), req)
			if !errors.Is(err, ErrAudience) {
				t.Fatalf("err = %v, want ErrAudience", err)
			}
			noSecrets(t, err, req)
			if f.sts.Requests() != 0 {
				t.Errorf("STS was asked about a request for another audience")
			}
		})
	}
}

func TestAWSReplayRefused(t *testing.T) {
	f := newAWSFixture(t, AWSConfig{})
	req := f.sign(t, static(roleKey, roleSecret, roleToken), testAudience, time.Now())
	if _, err := f.v.Verify(context.Background(), req); err != nil {
		t.Fatalf("first Verify: %v", err)
	}
	_, err := f.v.Verify(context.Background(), req)
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: err = %v, want ErrReplay", err)
	}
	noSecrets(t, err, req)
	if f.sts.Requests() != 1 {
		t.Errorf("STS requests = %d, want 1 (the replay must not be forwarded)", f.sts.Requests())
	}
}

func TestAWSConcurrentReplayOneWins(t *testing.T) {
	f := newAWSFixture(t, AWSConfig{})
	req := f.sign(t, static(userKey, userSecret, ""), testAudience, time.Now())
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.v.Verify(context.Background(), req)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	ok, replays := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrReplay):
			replays++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || replays != n-1 {
		t.Errorf("ok = %d, replays = %d; want 1 and %d", ok, replays, n-1)
	}
}

func TestAWSReplayCacheBoundedAndExpires(t *testing.T) {
	// Whole seconds, as X-Amz-Date carries them, so the window edges are exact.
	base := time.Now().Truncate(time.Second)
	now := base
	f := newAWSFixture(t, AWSConfig{Now: func() time.Time { return now }})
	f.v.maxSeen = 1

	first := f.sign(t, static(userKey, userSecret, ""), testAudience, base)
	if _, err := f.v.Verify(context.Background(), first); err != nil {
		t.Fatalf("first: %v", err)
	}
	second := f.sign(t, static(userKey, userSecret, ""), testAudience, base.Add(time.Second))
	_, err := f.v.Verify(context.Background(), second)
	if err == nil || errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "too many") {
		t.Fatalf("full cache: err = %v, want a retry-later refusal", err)
	}

	// Once the first signature is out of the date window it is forgotten
	// (a replay of it now fails the date check instead).
	now = base.Add(5*time.Minute + 500*time.Millisecond)
	if _, err := f.v.Verify(context.Background(), second); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if len(f.v.seen) != 1 || len(f.v.expiry) != 1 {
		t.Errorf("cache = %d/%d entries, want 1", len(f.v.seen), len(f.v.expiry))
	}
	if _, err := f.v.Verify(context.Background(), first); !errors.Is(err, ErrExpired) {
		t.Errorf("old replay: err = %v, want ErrExpired", err)
	}
}

func TestAWSSTSDown(t *testing.T) {
	f := newAWSFixture(t, AWSConfig{})
	req := f.sign(t, static(userKey, userSecret, ""), testAudience, time.Now())
	f.sts.Close()
	_, err := f.v.Verify(context.Background(), req)
	if err == nil || errors.Is(err, ErrInvalid) || errors.Is(err, ErrExpired) || errors.Is(err, ErrReplay) {
		t.Fatalf("err = %v, want an STS availability error", err)
	}
	if !strings.Contains(err.Error(), "STS unreachable") {
		t.Errorf("err = %v, want it to say STS is unreachable", err)
	}
	noSecrets(t, err, req)
	if len(f.v.seen) != 0 {
		t.Errorf("a request STS never saw stays in the replay cache")
	}
}

func TestAWSSTSServerError(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<ErrorResponse><Error><Code>InternalFailure</Code></Error></ErrorResponse>", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	v := NewAWSVerifier(AWSConfig{STSEndpoint: failing.URL + "/"})
	req, err := SignGetCallerIdentity(context.Background(), static(userKey, userSecret, ""), failing.URL+"/", "", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), req)
	if err == nil || errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v, want an STS 503 error", err)
	}
}

func TestSignGetCallerIdentityRequest(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	req, err := SignGetCallerIdentity(context.Background(), static(userKey, userSecret, ""), "", "", testAudience, at)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "POST" || req.URL != DefaultSTSEndpoint || string(req.Body) != getCallerIdentityBody {
		t.Errorf("request = %s %s %q", req.Method, req.URL, req.Body)
	}
	a, err := parseSigV4(http.Header(req.Header))
	if err != nil {
		t.Fatal(err)
	}
	if a.region != DefaultSTSRegion || a.service != "sts" || a.day != "20261125" || !a.signs("x-messagebus-audience") {
		t.Errorf("signature scope/headers = %+v", a)
	}
	if got := http.Header(req.Header).Get("X-Amz-Date"); got != "20261125T100000Z" {
		t.Errorf("X-Amz-Date = %q", got)
	}

	failing := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, errors.New("no credentials in environment")
	})
	if _, err := SignGetCallerIdentity(context.Background(), failing, "", "", "", at); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Errorf("credential error = %v", err)
	}
}
