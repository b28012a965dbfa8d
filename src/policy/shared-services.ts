/**
 * Shared services: domains under which anyone can get names that receive traffic — out-of-band
 * interaction servers (what a scanner or an exfiltrating job calls back to), request inspectors,
 * tunnels and hosting platforms. A wildcard over one (`*.oast.fun`) would let a devbox send
 * anything to whoever holds a name there, so `egress-gateway suggest` never proposes a wildcard
 * at or below these domains: it lists the exact names seen, with a comment saying why.
 *
 * Why a list beside the Public Suffix List: suggest reads the PSL with its private section
 * (tldts, `allowPrivateDomains: true`), where many hosting and tunnel platforms are already
 * public suffixes (herokuapp.com, vercel.app, netlify.app, pages.dev, workers.dev, repl.co,
 * ngrok.io, ngrok-free.app, trycloudflare.com, web.app, firebaseapp.com…): a customer's
 * `app.herokuapp.com` is then its own registrable domain and no wildcard ever spans the
 * platform. The out-of-band and request-catching services are not in the PSL (oast.fun,
 * interact.sh, pipedream.net, webhook.site, loca.lt, serveo.net, glitch.me, firebaseio.com…),
 * and on a tunnel or callback service even one tenant's subtree (`abc.ngrok-free.app`, which
 * the PSL makes registrable) is a place a devbox's job can send data to, so both kinds are
 * listed here; the PSL ones as a second line of defence should a tldts update drop them.
 *
 * Sources (checked 2026-12): ProjectDiscovery interactsh's default servers (oast.pro, oast.live,
 * oast.site, oast.online, oast.fun, oast.me) and its old interact.sh; PortSwigger Burp
 * Collaborator (burpcollaborator.net, oastify.com); request inspectors and webhook catchers
 * (pipedream.net, requestcatcher.com, requestbin.net, webhook.site, requestrepo.com,
 * beeceptor.com, hookbin.com, canarytokens.com, dnslog.cn, ceye.io); tunnels (ngrok, loca.lt,
 * localtunnel.me, serveo.net, serveousercontent.com, localhost.run, lhr.life, pinggy.link,
 * trycloudflare.com); wildcard-DNS services (nip.io, sslip.io, xip.io); and hosting platforms
 * whose names any sign-up gets (glitch.me, firebaseio.com, 000webhostapp.com and the PSL
 * private-section platforms named above).
 *
 * To update: add the service's domain (the part every user's names end with, lower case, no
 * `*.`) to the list in alphabetical order; `test/policy/shared-services.test.ts` checks the
 * list is valid, sorted and without duplicates. A name is covered at the domain and below.
 */
export const SHARED_SERVICES: readonly string[] = [
  '000webhostapp.com',
  'beeceptor.com',
  'burpcollaborator.net',
  'canarytokens.com',
  'ceye.io',
  'dnslog.cn',
  'firebaseapp.com',
  'firebaseio.com',
  'glitch.me',
  'herokuapp.com',
  'hookbin.com',
  'interact.sh',
  'lhr.life',
  'loca.lt',
  'localhost.run',
  'localtunnel.me',
  'netlify.app',
  'ngrok-free.app',
  'ngrok-free.dev',
  'ngrok.app',
  'ngrok.dev',
  'ngrok.io',
  'nip.io',
  'oast.fun',
  'oast.live',
  'oast.me',
  'oast.online',
  'oast.pro',
  'oast.site',
  'oastify.com',
  'pages.dev',
  'pinggy.link',
  'pipedream.net',
  'repl.co',
  'replit.dev',
  'requestbin.net',
  'requestcatcher.com',
  'requestrepo.com',
  'serveo.net',
  'serveousercontent.com',
  'sslip.io',
  'trycloudflare.com',
  'vercel.app',
  'web.app',
  'webhook.site',
  'workers.dev',
  'xip.io',
];

const SET: ReadonlySet<string> = new Set(SHARED_SERVICES);

/** The listed shared service `name` is (or is under), or null. `name` is a normalised host name. */
export function sharedService(name: string): string | null {
  if (SET.has(name)) return name;
  for (let i = name.indexOf('.'); i !== -1; i = name.indexOf('.', i + 1)) {
    const parent = name.slice(i + 1);
    if (SET.has(parent)) return parent;
  }
  return null;
}
