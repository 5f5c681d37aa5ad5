// Package oidcprovider runs a real OpenID provider for tests: the certified
// npm package oidc-provider (pinned at 9.13.3 in package.json), wrapped by
// provider.mjs and started by [Start] as a node process on 127.0.0.1.
//
// Setup, once per checkout (CI does it in .ci/run):
//
//	npm ci --prefix internal/testutil/oidcprovider
//
// Tests fail, never skip, when node or node_modules are missing.
//
// Fixtures, the same in every provider:
//
//   - Public native client "mb-cli" (no secret): authorization code with PKCE
//     S256, refresh tokens, device code; redirect URIs
//     http://127.0.0.1:<any port>/callback (mb access login) and
//     http://127.0.0.1:<any port>/console/ (the web console, which exchanges
//     the code from the page: CORS is allowed from http://127.0.0.1:<any port>).
//   - Confidential clients "workload-a"/"secret-a" and "workload-b"/"secret-b"
//     (client_credentials). Their access tokens are RS256 JWTs with
//     sub = client id and aud = the requested audience, e.g. "messagebus"
//     (sent as an RFC 8707 resource indicator), valid for 10 minutes.
//   - Confidential client "workload-short"/"secret-short", the same but with
//     access tokens valid for [ShortLivedTTL] (see [Provider.ShortLivedToken]).
//   - Accounts "alice" (email alice@example.com, groups ["new_team_eng"]) and
//     "bob" (email bob@example.com, groups ["other_team"]). Any password is
//     accepted. Scopes "email" and "groups" put those claims in ID tokens.
//
// Each provider has its own fresh signing key, so a second [Start] gives an
// issuer whose tokens a verifier trusting only the first must refuse.
//
// [Provider.Login], [Provider.Deny] and [Provider.ApproveDevice] play the
// browser: they drive the provider's own interaction pages (login form,
// consent form, device verification) over plain HTTP with a cookie jar.
//
// This package is for tests only; nothing outside tests may import it.
package oidcprovider
