package identity

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
)

// The AWS IAM method, as Vault's aws auth "iam" method does it: the
// workload signs an sts:GetCallerIdentity request with its own AWS
// credentials (SignGetCallerIdentity) and hands it over unsent; the
// verifier checks it and forwards it to STS, whose answer names the caller.
// STS checks the signature; the verifier makes sure the request can only
// go to the configured STS endpoint, only asks who the caller is, is fresh,
// was signed for this audience and is used once.

// AWSConfig configures an AWSVerifier. Zero values take the defaults.
type AWSConfig struct {
	// STSEndpoint is the only URL requests are accepted for and forwarded
	// to; DefaultSTSEndpoint when empty.
	STSEndpoint string
	// Region is the signing region requests must be scoped to;
	// DefaultSTSRegion when empty.
	Region string
	// Audience, when set, must be the value of AudienceHeader and that
	// header must be covered by the signature.
	Audience string
	// MaxSkew bounds the distance between X-Amz-Date and now; 5 minutes
	// when zero.
	MaxSkew time.Duration
	// HTTPClient sends requests to STS; redirects are never followed.
	// A client with a 10 s timeout when nil.
	HTTPClient *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// AWSVerifier verifies signed sts:GetCallerIdentity requests. It is safe
// for concurrent use.
type AWSVerifier struct {
	endpoint string
	region   string
	audience string
	maxSkew  time.Duration
	client   *http.Client
	now      func() time.Time

	mu      sync.Mutex
	seen    map[string]*seenEntry // signatures used (or being checked) and not yet out of the date window
	expiry  expiryHeap            // the same entries, soonest expiry first
	maxSeen int
}

const (
	defaultMaxSkew = 5 * time.Minute
	// stsSignatureLifetime is how long STS accepts a signed request.
	stsSignatureLifetime = 15 * time.Minute
	// defaultMaxSeen bounds the replay cache: at most this many sign-ins
	// within 2×MaxSkew; beyond it sign-ins are refused rather than
	// forgetting signatures that could then be replayed.
	defaultMaxSeen = 1 << 16

	awsMaxHeaders     = 64
	awsMaxHeaderBytes = 16 << 10
	awsMaxSTSResponse = 64 << 10
)

// NewAWSVerifier returns a verifier for cfg.
func NewAWSVerifier(cfg AWSConfig) *AWSVerifier {
	v := &AWSVerifier{
		endpoint: cfg.STSEndpoint,
		region:   cfg.Region,
		audience: cfg.Audience,
		maxSkew:  cfg.MaxSkew,
		now:      cfg.Now,
		seen:     map[string]*seenEntry{},
		maxSeen:  defaultMaxSeen,
	}
	if v.endpoint == "" {
		v.endpoint = DefaultSTSEndpoint
	}
	if v.region == "" {
		v.region = DefaultSTSRegion
	}
	if v.maxSkew <= 0 {
		v.maxSkew = defaultMaxSkew
	}
	if v.now == nil {
		v.now = time.Now
	}
	client := http.Client{Timeout: 10 * time.Second}
	if cfg.HTTPClient != nil {
		client = *cfg.HTTPClient
	}
	// A redirect would send the signed request to a URL STS (or whoever
	// answers) chose.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	v.client = &client
	return v
}

// Verify checks req, forwards it to STS and returns the identity STS
// names: Kind KindAWS, Subject the IAM role ARN for an assumed-role session
// (or the ARN STS answered for other principals, such as IAM users),
// ExpiresAt 15 minutes after the request was signed. Errors wrap ErrInvalid,
// ErrExpired, ErrAudience or ErrReplay when the request is at fault; other
// errors (STS unreachable or failing) are the control plane's.
func (v *AWSVerifier) Verify(ctx context.Context, req SignedRequest) (Identity, error) {
	now := v.now()
	if req.Method != http.MethodPost {
		return Identity{}, fmt.Errorf("%w: AWS signed request: method %s, want POST", ErrInvalid, clipAWS(req.Method))
	}
	if !sameEndpoint(req.URL, v.endpoint) {
		return Identity{}, fmt.Errorf("%w: AWS signed request is for %q; this control plane only accepts requests signed for the STS endpoint %q",
			ErrInvalid, clipAWS(req.URL), v.endpoint)
	}
	if !isGetCallerIdentity(req.Body) {
		return Identity{}, fmt.Errorf("%w: AWS signed request body must be exactly the sts:GetCallerIdentity action (%s)", ErrInvalid, getCallerIdentityBody)
	}
	h, err := checkAWSHeader(req.Header)
	if err != nil {
		return Identity{}, err
	}
	auth, err := parseSigV4(h)
	if err != nil {
		return Identity{}, err
	}
	if auth.service != "sts" || auth.region != v.region {
		return Identity{}, fmt.Errorf("%w: AWS signed request is scoped to %s/%s, want sts/%s", ErrInvalid, clipAWS(auth.service), clipAWS(auth.region), v.region)
	}
	for _, name := range []string{"host", "x-amz-date"} {
		if !auth.signs(name) {
			return Identity{}, fmt.Errorf("%w: AWS signed request does not sign the %s header", ErrInvalid, name)
		}
	}
	if h.Get("X-Amz-Security-Token") != "" && !auth.signs("x-amz-security-token") {
		return Identity{}, fmt.Errorf("%w: AWS signed request does not sign the X-Amz-Security-Token header", ErrInvalid)
	}

	dates := h.Values("X-Amz-Date")
	if len(dates) != 1 {
		return Identity{}, fmt.Errorf("%w: AWS signed request needs exactly one X-Amz-Date header", ErrInvalid)
	}
	signedAt, err := time.Parse("20060102T150405Z", dates[0])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: AWS signed request: X-Amz-Date %q is not an ISO 8601 basic time (YYYYMMDDTHHMMSSZ)", ErrInvalid, clipAWS(dates[0]))
	}
	if auth.day != dates[0][:8] {
		return Identity{}, fmt.Errorf("%w: AWS signed request: credential scope date %s does not match X-Amz-Date %s", ErrInvalid, clipAWS(auth.day), dates[0])
	}
	if now.Sub(signedAt) > v.maxSkew {
		return Identity{}, fmt.Errorf("%w: AWS request was signed at %s, more than %s ago; sign a new one",
			ErrExpired, signedAt.Format(time.RFC3339), v.maxSkew)
	}
	if signedAt.Sub(now) > v.maxSkew {
		return Identity{}, fmt.Errorf("%w: AWS request is signed for %s, more than %s in the future; check the workload's clock",
			ErrInvalid, signedAt.Format(time.RFC3339), v.maxSkew)
	}

	if v.audience != "" {
		got := h.Values(AudienceHeader)
		switch {
		case len(got) == 0:
			return Identity{}, fmt.Errorf("%w: AWS signed request has no %s header; sign it for audience %q", ErrAudience, AudienceHeader, v.audience)
		case len(got) > 1 || got[0] != v.audience:
			return Identity{}, fmt.Errorf("%w: AWS signed request is for audience %q, want %q", ErrAudience, clipAWS(strings.Join(got, ",")), v.audience)
		case !auth.signs(strings.ToLower(AudienceHeader)):
			return Identity{}, fmt.Errorf("%w: AWS signed request does not sign the %s header", ErrAudience, AudienceHeader)
		}
	}

	// Reserve the signature before forwarding so two concurrent uses
	// cannot both pass; release it when STS did not accept the request, so
	// unauthenticated garbage cannot fill the cache.
	if err := v.reserve(auth.signature, signedAt.Add(v.maxSkew), now); err != nil {
		return Identity{}, err
	}
	id, accepted, err := v.forward(ctx, h, req.Body, auth, signedAt)
	if !accepted {
		v.release(auth.signature)
	}
	return id, err
}

// forward sends the request to STS; accepted reports whether STS took the
// signature.
func (v *AWSVerifier) forward(ctx context.Context, h http.Header, body []byte, auth sigV4, signedAt time.Time) (Identity, bool, error) {
	fwd, err := http.NewRequestWithContext(ctx, http.MethodPost, v.endpoint, bytes.NewReader(body))
	if err != nil {
		return Identity{}, false, fmt.Errorf("AWS identity: STS endpoint %q: %w", v.endpoint, err)
	}
	for k, vs := range h {
		if !awsHopHeaders[k] {
			fwd.Header[k] = vs
		}
	}
	resp, err := v.client.Do(fwd)
	if err != nil {
		return Identity{}, false, fmt.Errorf("AWS identity: STS unreachable: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, awsMaxSTSResponse))
	if err != nil {
		return Identity{}, false, fmt.Errorf("AWS identity: read STS answer: %w", err)
	}

	if resp.StatusCode != http.StatusOK {
		var e stsErrorResponse
		if xml.Unmarshal(raw, &e) != nil || e.Error.Code == "" || resp.StatusCode >= 500 {
			return Identity{}, false, fmt.Errorf("AWS identity: STS answered %s", resp.Status)
		}
		msg := redactAWS(e.Error.Message, auth.signature, h.Get("X-Amz-Security-Token"))
		kind := ErrInvalid
		if e.Error.Code == "ExpiredToken" || e.Error.Code == "RequestExpired" || strings.HasPrefix(e.Error.Message, "Signature expired") {
			kind = ErrExpired
		}
		return Identity{}, false, fmt.Errorf("%w: STS refused the AWS signed request: %s: %s", kind, clipAWS(e.Error.Code), msg)
	}

	var ok stsIdentityResponse
	if err := xml.Unmarshal(raw, &ok); err != nil {
		return Identity{}, true, fmt.Errorf("AWS identity: STS answer is not a GetCallerIdentityResponse: %w", err)
	}
	arn, err := principalARN(ok.Result.Arn, ok.Result.Account)
	if err != nil {
		return Identity{}, true, err
	}
	return Identity{Kind: KindAWS, Subject: arn, ExpiresAt: signedAt.Add(stsSignatureLifetime)}, true, nil
}

type stsIdentityResponse struct {
	Result struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
}

type stsErrorResponse struct {
	Error struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
}

// principalARN maps an assumed-role session ARN
// (arn:P:sts::ACCT:assumed-role/ROLE/SESSION) to its role
// (arn:P:iam::ACCT:role/ROLE), so associations name the role, not one
// session of it. Roles with a path cannot be told apart here: their
// session ARNs do not carry the path, so associate the path-less ARN.
// Other principals (IAM users, root, federated users) keep their ARN.
func principalARN(arn, account string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || !isAccountID(parts[4]) || parts[5] == "" {
		return "", fmt.Errorf("AWS identity: STS answered a malformed ARN %q", clipAWS(arn))
	}
	if account != "" && account != parts[4] {
		return "", fmt.Errorf("AWS identity: STS answered ARN %q for a different account %q", clipAWS(arn), clipAWS(account))
	}
	switch parts[2] {
	case "iam":
		return arn, nil
	case "sts":
		rest, ok := strings.CutPrefix(parts[5], "assumed-role/")
		if !ok {
			return arn, nil
		}
		role, _, ok := strings.Cut(rest, "/")
		if !ok || role == "" {
			return "", fmt.Errorf("AWS identity: STS answered a malformed assumed-role ARN %q", clipAWS(arn))
		}
		return "arn:" + parts[1] + ":iam::" + parts[4] + ":role/" + role, nil
	default:
		return "", fmt.Errorf("AWS identity: STS answered an ARN of service %q", clipAWS(parts[2]))
	}
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// sameEndpoint compares URLs as HTTP would send them: scheme and host case
// insensitively, an empty path as "/"; no user info, query or fragment.
func sameEndpoint(got, want string) bool {
	g, err1 := url.Parse(got)
	w, err2 := url.Parse(want)
	if err1 != nil || err2 != nil || g.User != nil || g.RawQuery != "" || g.Fragment != "" || g.Opaque != "" || strings.Contains(got, "?") || strings.Contains(got, "#") {
		return false
	}
	path := func(u *url.URL) string {
		if u.EscapedPath() == "" {
			return "/"
		}
		return u.EscapedPath()
	}
	return strings.EqualFold(g.Scheme, w.Scheme) && strings.EqualFold(g.Host, w.Host) && path(g) == path(w)
}

func isGetCallerIdentity(body []byte) bool {
	if len(body) > 256 {
		return false
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || len(form) != 2 {
		return false
	}
	return len(form["Action"]) == 1 && form.Get("Action") == "GetCallerIdentity" &&
		len(form["Version"]) == 1 && form.Get("Version") == "2011-06-15"
}

// awsHopHeaders are not forwarded: the transport sets them for the
// connection to STS (Host and Content-Length from the configured endpoint
// and the body, which are what was signed).
var awsHopHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Connection": true, "Keep-Alive": true,
	"Proxy-Connection": true, "Proxy-Authorization": true, "Transfer-Encoding": true,
	"Te": true, "Trailer": true, "Upgrade": true,
}

// checkAWSHeader bounds and canonicalises the client's headers.
func checkAWSHeader(in map[string][]string) (http.Header, error) {
	if len(in) > awsMaxHeaders {
		return nil, fmt.Errorf("%w: AWS signed request has %d headers, at most %d allowed", ErrInvalid, len(in), awsMaxHeaders)
	}
	h := make(http.Header, len(in))
	size := 0
	for k, vs := range in {
		if !validAWSHeaderName(k) {
			return nil, fmt.Errorf("%w: AWS signed request has an invalid header name %q", ErrInvalid, clipAWS(k))
		}
		for _, v := range vs {
			size += len(k) + len(v)
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, fmt.Errorf("%w: AWS signed request header %s has an invalid value", ErrInvalid, clipAWS(k))
			}
			h.Add(k, v)
		}
	}
	if size > awsMaxHeaderBytes {
		return nil, fmt.Errorf("%w: AWS signed request headers exceed %d bytes", ErrInvalid, awsMaxHeaderBytes)
	}
	return h, nil
}

func validAWSHeaderName(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, c := range k {
		if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

type sigV4 struct {
	day, region, service string
	signedHeaders        []string
	signature            string
}

func (s sigV4) signs(name string) bool {
	for _, h := range s.signedHeaders {
		if h == name {
			return true
		}
	}
	return false
}

// parseSigV4 reads the Authorization header:
// AWS4-HMAC-SHA256 Credential=AKID/DAY/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=HEX
func parseSigV4(h http.Header) (sigV4, error) {
	vals := h.Values("Authorization")
	if len(vals) != 1 {
		return sigV4{}, fmt.Errorf("%w: AWS signed request needs exactly one Authorization header", ErrInvalid)
	}
	rest, ok := strings.CutPrefix(vals[0], "AWS4-HMAC-SHA256 ")
	if !ok {
		return sigV4{}, fmt.Errorf("%w: AWS signed request: Authorization is not an AWS4-HMAC-SHA256 signature", ErrInvalid)
	}
	var s sigV4
	var credential string
	for _, part := range strings.Split(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			credential = val
		case "SignedHeaders":
			s.signedHeaders = strings.Split(val, ";")
		case "Signature":
			s.signature = strings.ToLower(val)
		}
	}
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[0] == "" || scope[4] != "aws4_request" || len(s.signedHeaders) == 0 || !isLowerHex(s.signature, 64) {
		return sigV4{}, fmt.Errorf("%w: AWS signed request: Authorization needs Credential=<key>/<date>/<region>/sts/aws4_request, SignedHeaders and a SHA-256 Signature", ErrInvalid)
	}
	s.day, s.region, s.service = scope[1], scope[2], scope[3]
	return s, nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// reserve records sig until expires, refusing one already recorded.
func (v *AWSVerifier) reserve(sig string, expires, now time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for len(v.expiry) > 0 && !v.expiry[0].at.After(now) {
		e := heap.Pop(&v.expiry).(*seenEntry)
		delete(v.seen, e.sig)
	}
	if _, dup := v.seen[sig]; dup {
		return fmt.Errorf("%w: this AWS signed request was already presented; sign a new one for each exchange", ErrReplay)
	}
	if len(v.seen) >= v.maxSeen {
		return fmt.Errorf("AWS identity: too many AWS sign-ins in the last %s; retry shortly", 2*v.maxSkew)
	}
	e := &seenEntry{sig: sig, at: expires}
	v.seen[sig] = e
	heap.Push(&v.expiry, e)
	return nil
}

// release forgets a reserved signature.
func (v *AWSVerifier) release(sig string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.seen[sig]; ok {
		heap.Remove(&v.expiry, e.index)
		delete(v.seen, sig)
	}
}

type seenEntry struct {
	sig   string
	at    time.Time
	index int // in expiryHeap, kept by Swap/Push for heap.Remove
}

type expiryHeap []*seenEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*seenEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// clipAWS makes a client- or STS-supplied string safe to quote in an error:
// printable and short.
func clipAWS(s string) string {
	const max = 200
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "…"
	}
	return s
}

// redactAWS removes secrets from an STS message before it reaches an error.
func redactAWS(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return clipAWS(msg)
}
