package oidcprovider

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// accounts are the fixture users provider.mjs knows.
var accounts = map[string]bool{"alice": true, "bob": true}

// maxSteps bounds the pages a browser walk visits (login and consent take
// two each); more means the provider is looping.
const maxSteps = 12

// Login completes the authorization request at authURL as user, the way a
// browser would: it signs in on the provider's login page, approves the
// consent page and follows the redirect to the client's callback. It returns
// an error if the callback answers with an error status.
func (p *Provider) Login(ctx context.Context, authURL, user string) error {
	b, err := p.newBrowser(user)
	if err != nil {
		return err
	}
	page, err := b.get(ctx, authURL)
	if err != nil {
		return fmt.Errorf("login as %s: %w", user, err)
	}
	page, err = b.walk(ctx, page)
	if err != nil {
		return fmt.Errorf("login as %s: %w", user, err)
	}
	return page.callbackResult()
}

// Deny aborts the authorization request at authURL from the provider's
// interaction page, as a user pressing "cancel" would: the provider redirects
// to the client's callback with error=access_denied.
func (p *Provider) Deny(ctx context.Context, authURL string) error {
	b, err := p.newBrowser("")
	if err != nil {
		return err
	}
	page, err := b.get(ctx, authURL)
	if err != nil {
		return fmt.Errorf("deny: %w", err)
	}
	if !page.onIssuer || !strings.HasPrefix(page.url.Path, "/interaction/") {
		return fmt.Errorf("deny: expected an interaction page, got %s", page.describe())
	}
	abort := *page.url
	abort.Path = strings.TrimSuffix(abort.Path, "/") + "/abort"
	abort.RawQuery = ""
	page, err = b.get(ctx, abort.String())
	if err != nil {
		return fmt.Errorf("deny: %w", err)
	}
	if page.onIssuer {
		return fmt.Errorf("deny: expected the client's callback, got %s", page.describe())
	}
	// The callback is expected to answer an error with an error status.
	return nil
}

// ApproveDevice enters userCode on the provider's device verification page,
// signs in as user and approves the request.
func (p *Provider) ApproveDevice(ctx context.Context, userCode, user string) error {
	b, err := p.newBrowser(user)
	if err != nil {
		return err
	}
	page, err := b.get(ctx, p.Issuer+"/device?user_code="+url.QueryEscape(userCode))
	if err != nil {
		return fmt.Errorf("approve device as %s: %w", user, err)
	}
	page, err = b.walk(ctx, page)
	if err != nil {
		return fmt.Errorf("approve device as %s: %w", user, err)
	}
	if !page.onIssuer || !strings.Contains(page.title, "Success") {
		return fmt.Errorf("approve device as %s: ended on %s", user, page.describe())
	}
	return nil
}

type browser struct {
	p      *Provider
	user   string
	client *http.Client
	issuer *url.URL
}

func (p *Provider) newBrowser(user string) (*browser, error) {
	if user != "" && !accounts[user] {
		return nil, fmt.Errorf("unknown fixture account %q (have alice, bob)", user)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	iss, err := url.Parse(p.Issuer)
	if err != nil {
		return nil, err
	}
	return &browser{p: p, user: user, issuer: iss, client: &http.Client{Jar: jar, Timeout: p.client.Timeout}}, nil
}

// page is a fetched page after redirects.
type page struct {
	url      *url.URL
	status   int
	onIssuer bool
	title    string
	text     string
	forms    []form
}

type form struct {
	action  string
	fields  url.Values
	visible []string // names of non-hidden inputs
}

// walk submits the provider's forms until a page without one: the client's
// callback, or the device flow's success or error page.
func (b *browser) walk(ctx context.Context, pg *page) (*page, error) {
	for range maxSteps {
		if !pg.onIssuer || len(pg.forms) == 0 {
			return pg, nil
		}
		f := pg.forms[0]
		fields := url.Values{}
		for k, v := range f.fields {
			fields[k] = v
		}
		for _, name := range f.visible {
			switch name {
			case "login":
				fields.Set("login", b.user)
			case "password":
				fields.Set("password", "any-password")
			default:
				// The device code input page comes back when the code is
				// wrong or expired; resubmitting would loop.
				return nil, fmt.Errorf("provider asks for %q: %s", name, pg.describe())
			}
		}
		action, err := pg.url.Parse(f.action)
		if err != nil {
			return nil, fmt.Errorf("form action %q: %w", f.action, err)
		}
		if pg, err = b.post(ctx, action.String(), fields); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no end after %d pages, last %s", maxSteps, pg.describe())
}

func (b *browser) get(ctx context.Context, u string) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return b.do(req)
}

func (b *browser) post(ctx context.Context, u string, fields url.Values) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(fields.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *browser) do(req *http.Request) (*page, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		// The error names the URL, which may carry an authorization code;
		// say only where it failed.
		return nil, fmt.Errorf("%s %s%s: request failed", req.Method, req.URL.Host, req.URL.Path)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s%s: %w", resp.Request.URL.Host, resp.Request.URL.Path, err)
	}
	pg := &page{url: resp.Request.URL, status: resp.StatusCode, onIssuer: resp.Request.URL.Host == b.issuer.Host}
	parsePage(pg, string(body))
	return pg, nil
}

// callbackResult says whether a walk ended at the client's callback with success.
func (pg *page) callbackResult() error {
	if pg.onIssuer {
		return fmt.Errorf("ended on the provider, not the client's callback: %s", pg.describe())
	}
	if pg.status >= 400 {
		return fmt.Errorf("callback answered HTTP %d: %s", pg.status, pg.text)
	}
	return nil
}

// describe names a page for errors: host, path (never the query, which may
// hold a code), status, title and text.
func (pg *page) describe() string {
	text := pg.text
	if len(text) > 300 {
		text = text[:300] + "..."
	}
	return fmt.Sprintf("%s%s (HTTP %d, %q): %s", pg.url.Host, pg.url.Path, pg.status, pg.title, text)
}

func parsePage(pg *page, body string) {
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		pg.text = body
		return
	}
	var text strings.Builder
	var cur *form
	var visit func(n *html.Node)
	visit = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "script", "style":
				return
			case "title":
				if n.FirstChild != nil {
					pg.title = strings.TrimSpace(n.FirstChild.Data)
				}
				return
			case "form":
				pg.forms = append(pg.forms, form{action: attr(n, "action"), fields: url.Values{}})
				cur = &pg.forms[len(pg.forms)-1]
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					visit(c)
				}
				cur = nil
				return
			case "input":
				if cur != nil && attr(n, "name") != "" {
					if strings.EqualFold(attr(n, "type"), "hidden") {
						cur.fields.Add(attr(n, "name"), attr(n, "value"))
					} else {
						cur.visible = append(cur.visible, attr(n, "name"))
					}
				}
			}
		}
		if n.Type == html.TextNode {
			if s := strings.TrimSpace(n.Data); s != "" {
				text.WriteString(s)
				text.WriteByte(' ')
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			visit(c)
		}
	}
	visit(doc)
	pg.text = strings.TrimSpace(text.String())
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}
