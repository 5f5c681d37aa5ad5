// Package ststest is an in-test AWS STS endpoint that implements only
// GetCallerIdentity, for tests of the AWS IAM identity method. No real STS
// can be reached from the machines the tests run on, so this server stands
// in for it: it recomputes the SigV4 signature of each request for a set of
// known access keys (written here independently of the AWS SDK's signer, so
// it checks the client rather than mirroring it) and answers with the XML
// shapes STS uses, successes and errors alike.
//
// It depends only on the standard library and testing.
package ststest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// SignatureLifetime is how long STS accepts a signed request after (or
// before) its X-Amz-Date.
const SignatureLifetime = 15 * time.Minute

// Server is a fake STS endpoint. Its URL, with a trailing "/", is what
// clients sign requests for.
type Server struct {
	// URL is the base URL of the server, without a trailing slash.
	URL string

	srv      *httptest.Server
	requests atomic.Int64

	mu    sync.Mutex
	creds map[string]credential
	now   func() time.Time
}

type credential struct {
	secret       string
	sessionToken string // required X-Amz-Security-Token, when not empty
	expired      bool
	arn          string
}

// New starts a server that is closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{creds: map[string]credential{}, now: time.Now}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Endpoint is the URL clients sign for and verifiers forward to.
func (s *Server) Endpoint() string { return s.URL + "/" }

// AddCredentials makes accessKey/secret known; requests signed with them
// are answered with arn (for example an assumed-role session ARN such as
// arn:aws:sts::123456789012:assumed-role/app/i-0abc).
func (s *Server) AddCredentials(accessKey, secret, arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds[accessKey] = credential{secret: secret, arn: arn}
}

// AddSessionCredentials is AddCredentials for temporary credentials: the
// request must also carry sessionToken in X-Amz-Security-Token.
func (s *Server) AddSessionCredentials(accessKey, secret, sessionToken, arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds[accessKey] = credential{secret: secret, sessionToken: sessionToken, arn: arn}
}

// ExpireCredentials makes later requests with accessKey fail with
// ExpiredToken, as STS answers for expired temporary credentials.
func (s *Server) ExpireCredentials(accessKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.creds[accessKey]
	c.expired = true
	s.creds[accessKey] = c
}

// SetNow replaces the server's clock, used for the signature lifetime check.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Requests is the number of requests the server has received.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Close stops the server early, to test an STS that is down.
func (s *Server) Close() { s.srv.Close() }

const (
	stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
	amzDateFmt   = "20060102T150405Z"
	algorithm    = "AWS4-HMAC-SHA256"
)

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.Method != http.MethodPost {
		writeError(w, http.StatusBadRequest, "InvalidAction", "Could not find operation for "+r.Method+" request")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "could not read body")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Action") != "GetCallerIdentity" {
		writeError(w, http.StatusBadRequest, "InvalidAction", "Could not find operation "+form.Get("Action")+" for version "+form.Get("Version"))
		return
	}
	if form.Get("Version") != "2011-06-15" {
		writeError(w, http.StatusBadRequest, "InvalidAction", "Could not find operation GetCallerIdentity for version "+form.Get("Version"))
		return
	}

	auth := r.Header.Get("Authorization")
	if auth == "" {
		writeError(w, http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
		return
	}
	a, ok := parseAuthorization(auth)
	if !ok {
		writeError(w, http.StatusBadRequest, "IncompleteSignature", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters")
		return
	}
	scope := strings.Split(a.credential, "/")
	if len(scope) != 5 || scope[3] != "sts" || scope[4] != "aws4_request" {
		writeError(w, http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped to correct service: 'sts'.")
		return
	}
	accessKey, day, region := scope[0], scope[1], scope[2]

	s.mu.Lock()
	c, known := s.creds[accessKey]
	now := s.now()
	s.mu.Unlock()
	if !known {
		writeError(w, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	if c.sessionToken != "" && !hmac.Equal([]byte(r.Header.Get("X-Amz-Security-Token")), []byte(c.sessionToken)) {
		writeError(w, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	if c.expired {
		writeError(w, http.StatusForbidden, "ExpiredToken", "The security token included in the request is expired")
		return
	}

	amzDate := r.Header.Get("X-Amz-Date")
	signedAt, err := time.Parse(amzDateFmt, amzDate)
	if err != nil {
		writeError(w, http.StatusBadRequest, "IncompleteSignature", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
		return
	}
	if !strings.HasPrefix(amzDate, day) {
		writeError(w, http.StatusForbidden, "SignatureDoesNotMatch", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP")
		return
	}
	if now.Sub(signedAt) > SignatureLifetime {
		writeError(w, http.StatusForbidden, "SignatureDoesNotMatch", fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 15 min.)",
			amzDate, now.Add(-SignatureLifetime).UTC().Format(amzDateFmt), now.UTC().Format(amzDateFmt)))
		return
	}
	if signedAt.Sub(now) > SignatureLifetime {
		writeError(w, http.StatusForbidden, "SignatureDoesNotMatch", fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + 15 min.)",
			amzDate, now.Add(SignatureLifetime).UTC().Format(amzDateFmt), now.UTC().Format(amzDateFmt)))
		return
	}

	want := signature(c.secret, day, region, amzDate, a.credential, canonicalRequest(r, a.signedHeaders, body))
	if !hmac.Equal([]byte(want), []byte(a.signature)) {
		writeError(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
		return
	}
	writeIdentity(w, c.arn, accessKey)
}

type authorization struct {
	credential    string
	signedHeaders []string
	signature     string
}

func parseAuthorization(h string) (authorization, bool) {
	rest, ok := strings.CutPrefix(h, algorithm+" ")
	if !ok {
		return authorization{}, false
	}
	var a authorization
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			a.credential = v
		case "SignedHeaders":
			a.signedHeaders = strings.Split(v, ";")
		case "Signature":
			a.signature = v
		}
	}
	return a, a.credential != "" && len(a.signedHeaders) > 0 && a.signature != ""
}

// canonicalRequest follows the SigV4 specification ("Create a canonical
// request"); only the parts GetCallerIdentity needs (no query string).
func canonicalRequest(r *http.Request, signedHeaders []string, body []byte) string {
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(path + "\n")
	b.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	names := append([]string(nil), signedHeaders...)
	sort.Strings(names)
	for _, name := range names {
		var values []string
		switch name {
		case "host":
			values = []string{r.Host}
		case "content-length":
			values = []string{fmt.Sprint(r.ContentLength)}
		default:
			values = r.Header.Values(name)
		}
		for i, v := range values {
			values[i] = strings.Join(strings.Fields(v), " ")
		}
		b.WriteString(name + ":" + strings.Join(values, ",") + "\n")
	}
	b.WriteString("\n" + strings.Join(names, ";") + "\n")
	sum := sha256.Sum256(body)
	b.WriteString(hex.EncodeToString(sum[:]))
	return b.String()
}

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, url.QueryEscape(k)+"="+strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
		}
	}
	return strings.Join(parts, "&")
}

func signature(secret, day, region, amzDate, credential, canonical string) string {
	scope := strings.SplitN(credential, "/", 2)[1]
	sum := sha256.Sum256([]byte(canonical))
	toSign := algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := hmacSHA256([]byte("AWS4"+secret), day)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, "sts")
	key = hmacSHA256(key, "aws4_request")
	return hex.EncodeToString(hmacSHA256(key, toSign))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

type identityResponse struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

func writeIdentity(w http.ResponseWriter, arn, accessKey string) {
	var resp identityResponse
	resp.Xmlns = stsNamespace
	resp.Result.Arn = arn
	if parts := strings.SplitN(arn, ":", 6); len(parts) == 6 {
		resp.Result.Account = parts[4]
	}
	// STS answers a role session's unique id as "AROA...:session"; a stable
	// stand-in is enough for tests.
	resp.Result.UserID = "AIDA" + strings.ToUpper(accessKey)
	if _, session, ok := strings.Cut(arn, ":assumed-role/"); ok {
		if i := strings.LastIndex(session, "/"); i >= 0 {
			resp.Result.UserID = "AROA" + strings.ToUpper(accessKey) + ":" + session[i+1:]
		}
	}
	resp.RequestID = "01234567-89ab-cdef-0123-456789abcdef"
	writeXML(w, http.StatusOK, resp)
}

type errorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	var resp errorResponse
	resp.Xmlns = stsNamespace
	resp.Error.Type = "Sender"
	resp.Error.Code = code
	resp.Error.Message = message
	resp.RequestID = "01234567-89ab-cdef-0123-456789abcdef"
	writeXML(w, status, resp)
}

func writeXML(w http.ResponseWriter, status int, v any) {
	out, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write(append(out, '\n'))
}
