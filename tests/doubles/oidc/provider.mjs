// A real OpenID provider (oidc-provider, the certified implementation) for the SSO tests, on loopback.
//
// Configured by environment: OIDC_CLIENTS, a JSON list of {client_id, client_secret, redirect_uris}.
// Listens on a free port of 127.0.0.1 and prints one JSON line, {"issuer": ...}, once it accepts requests.
//
// The login "page" is driven by the test: POST /interaction/<uid>/login with the form fields sub, email,
// email_verified (true|false), groups (comma-separated) and name signs in as that account, made on the spot.
// Consent is granted without asking (a first-party client). GET /mixup/.well-known/openid-configuration is
// a lying discovery document: this provider's endpoints under another issuer name, as in a mix-up attack.
// Every other request goes to oidc-provider itself.

import { generateKeyPairSync, randomBytes } from "node:crypto";
import http from "node:http";
import { URL } from "node:url";

import Provider from "oidc-provider";

const accounts = new Map();

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => resolve(new URLSearchParams(body)));
    req.on("error", reject);
  });
}

function send(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const provider = new Provider(issuer, {
  clients: JSON.parse(process.env.OIDC_CLIENTS || "[]").map((client) => ({
    grant_types: ["authorization_code"],
    response_types: ["code"],
    ...client,
  })),
  jwks: { keys: [{ ...privateKey.export({ format: "jwk" }), kid: "test", use: "sig", alg: "RS256" }] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name"],
    groups: ["groups"],
  },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, sub) {
    const account = accounts.get(sub);
    return account && { accountId: sub, claims: async () => ({ sub, ...account }) };
  },
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(" ") : "openid");
    grant.addOIDCClaims(["sub", "email", "email_verified", "name", "groups"]);
    await grant.save();
    return grant;
  },
});
const callback = provider.callback();

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, { error: "interaction mismatch" });
  if (req.method === "GET") return send(res, 200, { uid, prompt: details.prompt.name });
  if (req.method !== "POST" || action !== "login") return send(res, 405, { error: "POST /interaction/<uid>/login" });
  const form = await readForm(req);
  const sub = form.get("sub");
  if (!sub) return send(res, 400, { error: "sub is required" });
  accounts.set(sub, {
    email: form.get("email") || undefined,
    email_verified: form.get("email_verified") !== "false",
    name: form.get("name") || sub,
    groups: (form.get("groups") || "").split(",").filter(Boolean),
  });
  return provider.interactionFinished(req, res, { login: { accountId: sub } }, { mergeWithLastSubmission: false });
}

async function mixup(res) {
  const real = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  // Posing as a provider that does not name itself in its responses (RFC 9207), as many do not.
  delete real.authorization_response_iss_parameter_supported;
  send(res, 200, { ...real, issuer: `${issuer}/mixup` });
}

server.on("request", async (req, res) => {
  const { pathname } = new URL(req.url, issuer);
  const match = pathname.match(/^\/interaction\/([^/]+)(?:\/(\w+))?$/);
  try {
    if (match) return await interaction(req, res, match[1], match[2]);
    if (pathname === "/mixup/.well-known/openid-configuration") return await mixup(res);
    return callback(req, res);
  } catch (err) {
    return send(res, 500, { error: String(err) });
  }
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
console.log(JSON.stringify({ issuer }));
