/**
 * The fleet page's side of the daemon's HTTP server (docs/FLEET-PAGE.md): its static files (hand-written HTML, CSS
 * and ES modules in mgmt-station/page/, uPlot from node_modules/uplot/dist, no build step) and its reads
 * (fleet-view.ts). Reads and files need no credential: they show nothing that holds a key, on a loopback-only
 * server, like the emulator's control API; what acts on a NIC (POST /v1/nics/:id/VERB) keeps the daemon's
 * credential (daemon.ts). A request whose Host is not a loopback name is refused (E_HOST, 403), so a web page from
 * elsewhere cannot read the fleet through a DNS name rebound to 127.0.0.1.
 */
import type http from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve } from 'node:path';
import { LifelineError } from '../common/errors.js';
import { decodePathSegment } from '../lib/json-http.js';
import type { FleetView } from './fleet-view.js';

const PAGE_DIR = resolve(import.meta.dirname, '../../mgmt-station/page');
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml',
};

/** The files the page may ask for, by URL path: read once, at the first request. */
let files: Map<string, { type: string; body: Buffer }> | null = null;
function staticFiles(): Map<string, { type: string; body: Buffer }> {
  if (files) return files;
  const m = new Map<string, { type: string; body: Buffer }>();
  for (const name of readdirSync(PAGE_DIR)) {
    const type = TYPES[extname(name)];
    if (type) m.set(`/page/${name}`, { type, body: readFileSync(join(PAGE_DIR, name)) });
  }
  m.set('/', m.get('/page/index.html')!);
  const uplot = dirname(createRequire(import.meta.url).resolve('uplot'));
  m.set('/vendor/uPlot.esm.js', { type: TYPES['.js'], body: readFileSync(join(uplot, 'uPlot.esm.js')) });
  m.set('/vendor/uPlot.min.css', { type: TYPES['.css'], body: readFileSync(join(uplot, 'uPlot.min.css')) });
  return (files = m);
}

/** Is `host` (a Host header) a loopback name: 127.x.y.z, localhost or [::1], with or without a port? */
export function loopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/** Is this a request for the page (a file or a read)? Then servePage() answers it. */
export function isPageRequest(method: string | undefined, path: string): boolean {
  return (method === 'GET' || method === 'HEAD') && (path === '/' || path.startsWith('/page/') || path.startsWith('/vendor/') || path === '/v1/fleet' || path.startsWith('/v1/fleet/'));
}

/**
 * Answer a page request: a file, or JSON from the fleet view, or the event stream. Returns the JSON to send (the
 * daemon writes it as it writes every answer), or null when the answer was sent here. Throws coded errors.
 */
export async function servePage(view: FleetView, req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<unknown> {
  if (!loopbackHost(req.headers.host)) throw new LifelineError('E_HOST', `the station daemon answers loopback names only (Host: ${req.headers.host ?? 'none'}); open http://127.0.0.1:PORT/`);
  const path = url.pathname;
  const f = staticFiles().get(path);
  if (f) {
    res.writeHead(200, { 'content-type': f.type, 'content-length': f.body.length, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
    res.end(req.method === 'HEAD' ? undefined : f.body);
    return null;
  }
  if (path === '/v1/fleet') return view.glance();
  if (path === '/v1/fleet/nics') return view.list(url.searchParams);
  if (path === '/v1/fleet/events') {
    await view.stream(req, res);
    return null;
  }
  const m = /^\/v1\/fleet\/nics\/([^/]+)$/.exec(path);
  if (m) return view.nic(decodePathSegment(m[1]));
  throw new LifelineError('E_NOT_FOUND', `no such page or endpoint: ${req.method} ${path}`);
}
