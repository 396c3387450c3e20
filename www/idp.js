// The demo's identity-provider card: a second keeper, of an OpenID provider's
// session (npm oidc-provider, which `make demo` starts and the dev server
// names at /demo-config.json). Log in goes to the provider's page and comes
// back to this page, where handleRedirect() finishes the login.
import init, { TokenKeeper, isTokenKeeperError } from "/pkg/tokenkeeper.js";

const $ = (id) => document.getElementById(id);
const show = (text) => ($("idp-result").textContent = text);
const describe = (e) =>
  isTokenKeeperError(e) ? `${e.code}${e.error ? ` (${e.error})` : ""}: ${e.message}` : String(e);

function state(text, kind) {
  $("idp-state").textContent = text;
  $("idp-state").className = "badge " + kind;
}

const config = await fetch("/demo-config.json").then((r) => (r.ok ? r.json() : null), () => null);
if (!config?.issuer) {
  state("no provider", "off");
  show("This server was started without --issuer: `make demo` starts one.");
} else {
  await init();
  const issuer = config.issuer;
  const keeper = new TokenKeeper({
    issuer,
    clientId: "spa",
    redirectUri: location.origin + "/",
    scope: "openid profile offline_access",
    allowedOrigins: [location.origin, issuer],
    refreshLeadSeconds: 3,
    channel: "demo-idp",
  });
  window.idpKeeper = keeper;

  const render = () => {
    const on = keeper.isAuthenticated;
    state(on ? "logged in" : "logged out", on ? "on" : "off");
    const claims = keeper.idTokenClaims;
    $("idp-who").textContent = on && claims ? `as ${claims.name ?? claims.sub} (sub ${claims.sub})` : "";
    $("idp-login").disabled = on;
    $("idp-call").disabled = !on;
    $("idp-logout").disabled = !on;
  };
  keeper.on("change", render);
  keeper.on("refresh", (d) => show(`new tokens from the provider (${d.source}), generation ${d.generation}`));
  keeper.on("logout", (d) => show(`session ended: ${d.reason}`));

  $("idp-login").addEventListener("click", () =>
    keeper.loginRedirect({ returnTo: location.pathname }).catch((e) => show(describe(e))));
  $("idp-call").addEventListener("click", async () => {
    try {
      const res = await keeper.fetch(issuer + "/me");
      show(`GET ${issuer}/me → ${res.status}\n${JSON.stringify(await res.json(), null, 1)}`);
    } catch (e) {
      show(describe(e));
    }
  });
  $("idp-logout").addEventListener("click", () =>
    keeper.logoutRedirect({ postLogoutRedirectUri: location.origin + "/" }).catch((e) => show(describe(e))));

  try {
    const done = await keeper.handleRedirect();
    if (done) show(`logged in at the provider: back at ${done.returnTo}, the code exchanged, the ID token checked`);
    else if (await keeper.ready()) show("joined the provider's session another tab holds: no request");
  } catch (e) {
    show(describe(e));
  }
  render();
}
