// A local OpenID Connect provider with Keycloak's URL layout, for tests and demos.
//
// Built on `oidc-provider` (npm). Serves one or more realms at /realms/<realm>, each a real
// OIDC issuer (discovery, JWKS, token endpoint, authorization-code login) that signs JWT access
// tokens with RS256 and puts Keycloak-style claims in them: `azp`, `preferred_username`,
// `realm_access.roles`, `resource_access.<client>.roles`, `groups`.
//
//   node tests/oidc/provider.mjs CONFIG.json
//
// Prints one line `OIDC-READY {"port":...,"issuers":{...}}` on stdout when listening.
// See tests/oidc/README.md for the configuration and the admin endpoints (key rotation).

import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import querystring from 'node:querystring';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const HOST = config.host || '127.0.0.1';
const KC = '/protocol/openid-connect';

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
}

const sharedKeys = config.shared_keys ? [newKey()] : null;
const realms = {}; // name -> { cfg, keys, provider, issuer }

function audienceOf(resource) {
  return resource.startsWith('urn:') ? resource.slice(4) : resource;
}

function clientRoles(roles) {
  const out = {};
  for (const [client, list] of Object.entries(roles || {})) out[client] = { roles: list };
  return out;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function buildProvider(name, issuer, keys) {
  const cfg = realms[name].cfg;
  const audience = cfg.audience || 'lab-api';
  const users = Object.fromEntries((cfg.users || []).map((u) => [u.username, u]));
  const clients = (cfg.clients || []).map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: c.grant_types || ['client_credentials'],
    response_types: (c.grant_types || []).includes('authorization_code') ? ['code'] : [],
    redirect_uris: c.redirect_uris || [],
    token_endpoint_auth_method: c.token_endpoint_auth_method || 'client_secret_basic',
    realm_roles: c.realm_roles || [],
    client_roles: c.client_roles || {},
    access_token_ttl: c.access_token_ttl || cfg.access_token_ttl || 300,
  }));
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys },
    cookies: { keys: [config.cookie_secret || randomBytes(16).toString('hex')] },
    routes: {
      authorization: `${KC}/auth`,
      token: `${KC}/token`,
      jwks: `${KC}/certs`,
      userinfo: `${KC}/userinfo`,
      end_session: `${KC}/logout`,
      introspection: `${KC}/token/introspect`,
      revocation: `${KC}/revoke`,
    },
    extraClientMetadata: { properties: ['realm_roles', 'client_roles', 'access_token_ttl'] },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email', 'email_verified'],
      roles: ['realm_access', 'resource_access', 'groups'],
    },
    conformIdTokenClaims: false,
    pkce: { required: () => false },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // client credentials get a JWT for the API; an authorization-code login with `openid`
        // gets an access token for the userinfo endpoint unless it asks for a resource
        defaultResource: (ctx, client, oneOf) => (ctx.oidc.params.grant_type === 'client_credentials'
          ? `urn:${audience}` : oneOf),
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, resource, client) => ({
          scope: 'openid profile email roles',
          audience: audienceOf(resource),
          accessTokenTTL: client.access_token_ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    async extraTokenClaims(ctx, token) {
      const client = ctx.oidc.client || (await provider.Client.find(token.clientId));
      if (token.accountId && users[token.accountId]) {
        const u = users[token.accountId];
        return {
          azp: token.clientId,
          typ: 'Bearer',
          preferred_username: u.username,
          groups: u.groups || [],
          realm_access: { roles: u.realm_roles || [] },
          resource_access: clientRoles(u.client_roles),
        };
      }
      return {
        azp: token.clientId,
        typ: 'Bearer',
        preferred_username: `service-account-${token.clientId}`,
        realm_access: { roles: client ? client.realm_roles : [] },
        resource_access: clientRoles(client ? client.client_roles : {}),
      };
    },
    async findAccount(ctx, sub) {
      const u = users[sub];
      if (!u) return undefined;
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            preferred_username: u.username,
            name: u.name || u.username,
            email: u.email || `${u.username}@example.org`,
            email_verified: true,
            groups: u.groups || [],
            realm_access: { roles: u.realm_roles || [] },
            resource_access: clientRoles(u.client_roles),
          };
        },
      };
    },
    interactions: { url: (ctx, interaction) => `/realms/${name}/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: cfg.access_token_ttl || 300,
      AuthorizationCode: 60,
      ClientCredentials: (ctx, token, client) => (client && client.access_token_ttl) || 300,
      Grant: 3600,
      IdToken: 3600,
      Interaction: 600,
      RefreshToken: 86400,
      Session: 3600,
    },
  });
  provider.on('server_error', (ctx, err) => console.error(`[${name}] server_error`, err));
  return provider;
}

function setKeys(name, keys) {
  const realm = realms[name];
  realm.keys = keys;
  realm.provider = buildProvider(name, realm.issuer, keys);
}

function publicKids(name) {
  return realms[name].keys.map((k) => k.kid);
}

async function readBody(req, limit = 65536) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) throw new Error('body too large');
  }
  return body;
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

function loginPage(uid, name, error) {
  return `<!doctype html><html><head><title>Sign in to ${escapeHtml(name)}</title></head><body>
<h1>Sign in (realm ${escapeHtml(name)})</h1>${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/realms/${escapeHtml(name)}/interaction/${escapeHtml(uid)}">
<label>Username <input name="username" id="username" autofocus></label>
<label>Password <input name="password" id="password" type="password"></label>
<button type="submit" id="kc-login">Sign in</button></form></body></html>`;
}

async function interaction(name, req, res) {
  const { provider, cfg } = realms[name];
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params, session } = details;
  if (prompt.name === 'login') {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(loginPage(uid, name, ''));
      return;
    }
    const form = querystring.parse(await readBody(req));
    const user = (cfg.users || []).find((u) => u.username === form.username);
    const ok = user && typeof form.password === 'string'
      && Buffer.byteLength(form.password) === Buffer.byteLength(user.password)
      && timingSafeEqual(Buffer.from(form.password), Buffer.from(user.password));
    if (!ok) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(loginPage(uid, name, 'Invalid username or password.'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.username } }, { mergeWithLastSubmission: false });
    return;
  }
  // consent: granted automatically (a first-party realm, as Keycloak does for its own clients)
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function admin(req, res, url) {
  if (config.admin_token && req.headers.authorization !== `Bearer ${config.admin_token}`) {
    sendJson(res, 401, { error: 'admin token required' });
    return;
  }
  const m = url.pathname.match(/^\/admin\/realms\/([^/]+)\/(keys|rotate)$/);
  if (!m || !realms[m[1]]) {
    sendJson(res, 404, { error: 'no such admin endpoint or realm' });
    return;
  }
  const name = m[1];
  if (m[2] === 'keys' && req.method === 'GET') {
    sendJson(res, 200, { kids: publicKids(name) });
    return;
  }
  if (m[2] === 'rotate' && req.method === 'POST') {
    // new signing key first; keep_old=1 keeps the previous keys published (a grace period)
    const keepOld = url.searchParams.get('keep_old') === '1';
    const fresh = newKey();
    const targets = sharedKeys ? Object.keys(realms) : [name];
    const removed = keepOld ? [] : publicKids(name);
    const keys = keepOld ? [fresh, ...realms[name].keys] : [fresh];
    for (const t of targets) setKeys(t, keys);
    sendJson(res, 200, { kid: fresh.kid, kids: publicKids(name), removed });
    return;
  }
  sendJson(res, 405, { error: 'method not allowed' });
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname.startsWith('/admin/')) {
      await admin(req, res, url);
      return;
    }
    const m = url.pathname.match(/^\/realms\/([^/]+)(\/.*)?$/);
    if (!m || !realms[m[1]]) {
      sendJson(res, 404, { error: 'Realm does not exist' });
      return;
    }
    const name = m[1];
    if ((m[2] || '').startsWith('/interaction/')) {
      await interaction(name, req, res);
      return;
    }
    const prefix = `/realms/${name}`;
    req.originalUrl = req.url;
    req.url = req.url.slice(prefix.length) || '/';
    realms[name].provider.callback()(req, res);
  } catch (err) {
    console.error('request failed', err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err.message || err) });
  }
});

server.listen(config.port || 0, HOST, () => {
  const { port } = server.address();
  const issuers = {};
  for (const [name, cfg] of Object.entries(config.realms || {})) {
    const issuer = `http://${HOST}:${port}/realms/${name}`;
    realms[name] = { cfg, issuer, keys: [], provider: null };
    setKeys(name, sharedKeys || [newKey()]);
    issuers[name] = issuer;
  }
  console.log(`OIDC-READY ${JSON.stringify({ port, issuers })}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
