// A real OpenID provider (panva/oidc-provider) for MessageBus tests, started
// by provider.go. It listens on 127.0.0.1 on a port the kernel picks, so the
// issuer is only known after listen; it prints one JSON line
// {"issuer": "..."} on stdout once ready and exits when stdin closes, so a
// crashed test binary never leaves it running. Fixtures are documented in
// doc.go.
import http from 'node:http';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';

import Provider from 'oidc-provider';

// RFC 8707 resource indicators must be absolute URIs, but workload audiences
// are usually plain names ("messagebus", as in Kubernetes service-account
// tokens). The Go helper sends such names under this prefix and the access
// token's aud is the name without it.
const AUDIENCE_PREFIX = 'urn:messagebus-test:audience:';

const SHORT_TTL_CLIENT = 'workload-short';
const SHORT_TTL_SECONDS = 2;

const accounts = {
  alice: { email: 'alice@example.com', groups: ['new_team_eng'] },
  bob: { email: 'bob@example.com', groups: ['other_team'] },
};

const workload = (id, secret) => ({
  client_id: id,
  client_secret: secret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
});

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

// A fresh key per process: tokens from one provider never verify against
// another, which is what "untrusted issuer" tests rely on.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig',
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'mb-cli',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      // Native clients may use any loopback port (RFC 8252 section 7.3).
      // The web console is a browser client of the same login: its page is
      // its callback.
      redirect_uris: ['http://127.0.0.1/callback', 'http://127.0.0.1/console/'],
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
    },
    workload('workload-a', 'secret-a'),
    workload('workload-b', 'secret-b'),
    workload(SHORT_TTL_CLIENT, 'secret-short'),
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // Put the scope's claims (email, groups) in ID tokens of the code and
  // device flows too, not only in the userinfo response.
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) {
      return undefined;
    }
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: account.email, email_verified: true, groups: account.groups,
        };
      },
    };
  },
  // The CLI refreshes without asking for offline_access.
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  pkce: { required: () => true },
  // The console exchanges its code from the page (CORS). The default allows
  // only a redirect URI's exact origin, but loopback redirects of native
  // clients take any port (RFC 8252 section 7.3), so their origins do too.
  clientBasedCORS(ctx, origin, client) {
    const o = URL.parse(origin);
    if (!o || client.clientAuthMethod !== 'none') {
      return false;
    }
    return client.redirectUris.some((uri) => {
      const r = URL.parse(uri);
      return r && r.protocol === o.protocol && r.hostname === o.hostname
        && (r.port === o.port || (client.applicationType === 'native' && r.hostname === '127.0.0.1' && r.port === ''));
    });
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      getResourceServerInfo(ctx, indicator, client) {
        const audience = indicator.startsWith(AUDIENCE_PREFIX)
          ? indicator.slice(AUDIENCE_PREFIX.length) : indicator;
        return {
          scope: '',
          audience,
          accessTokenFormat: 'jwt',
          accessTokenTTL: client.clientId === SHORT_TTL_CLIENT ? SHORT_TTL_SECONDS : 600,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});

// Errors are reported to the client; keep the server side quiet except for
// real server errors, which the Go helper shows when a test fails.
provider.on('server_error', (ctx, err) => console.error('server_error', err));

server.on('request', provider.callback());

process.stdout.write(`${JSON.stringify({ issuer })}\n`);

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
