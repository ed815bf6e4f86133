/**
 * The NIC's station-cluster policy file (DESIGN §5 "NIC-side failover", §2.3), in the INI syntax of the
 * seed's VPN-gateway-cluster client:
 *
 *   [GENERAL]
 *   Heartbeat = NONE | DEFERRED | INSTANT     ; default NONE
 *   HeartbeatResponseTime = 2                 ; seconds: second probe after n s, fail over after 2n s
 *   HeartbeatDeferTime = 10                   ; seconds: DEFERRED probes only after this long without news
 *   Randomize = yes | no                      ; default yes: station order shuffled per NIC
 *   [CLUSTER]
 *   Cluster1 = 127.0.0.1:7001 127.0.0.2:7001  ; one or more stations, address[:port]
 *   Cluster2 = 127.0.0.3                      ; several ClusterN lines may follow
 *
 * Syntax: section names and keys are case-insensitive; `;` or `#` starts a comment (at the start of a line,
 * or after whitespace); blank lines and whitespace around `=` are ignored. Everything else is an error
 * naming the file and line: unknown sections and keys, a key given twice, a section opened twice, a key
 * before any section, a station listed twice, and a Heartbeat mode other than NONE without stations.
 *
 * Stations are IPv4 addresses or host names with an optional port (default 664, the secure RMCP port,
 * DESIGN §2.2); they are normalised to `address:port`, which is the form `stationOrder` returns and the
 * heartbeat monitor compares against.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { UsageError } from '../common/errors.js';
import { concat, putU32 } from '../common/bytes.js';

export type HeartbeatMode = 'NONE' | 'DEFERRED' | 'INSTANT';
export const HEARTBEAT_MODES: readonly HeartbeatMode[] = ['NONE', 'DEFERRED', 'INSTANT'];

/** Port a station is assumed to listen on when the policy gives none (UDP/664, DESIGN §2.2). */
export const DEFAULT_STATION_PORT = 664;
/** Upper bound for the two times, so that milliseconds stay exact and a typo (3600000) is caught. */
export const MAX_POLICY_SECONDS = 86_400;

export interface ClusterLine {
  /** N of `ClusterN` (1, 2, ...). */
  index: number;
  /** Stations of that line as `address:port`, in the order written. */
  stations: string[];
}

export interface ClusterPolicy {
  heartbeat: HeartbeatMode;
  /** Seconds (>= 1) to wait for an answer before the second probe, and again before failing over. */
  heartbeatResponseTime: number;
  /** Seconds (>= 0) without any packet from the station before DEFERRED mode probes. */
  heartbeatDeferTime: number;
  /** Shuffle the station order per NIC (`stationOrder`); `false` keeps the listed order. */
  randomize: boolean;
  /** `ClusterN` lines sorted by N. */
  clusters: ClusterLine[];
}

/** The seed's defaults: no heartbeat, 2 s response time, 10 s defer time, randomised order. */
export function defaultClusterPolicy(): ClusterPolicy {
  return { heartbeat: 'NONE', heartbeatResponseTime: 2, heartbeatDeferTime: 10, randomize: true, clusters: [] };
}

const GENERAL_KEYS = {
  heartbeat: 'Heartbeat',
  heartbeatresponsetime: 'HeartbeatResponseTime',
  heartbeatdefertime: 'HeartbeatDeferTime',
  randomize: 'Randomize',
} as const;
type GeneralKey = keyof typeof GENERAL_KEYS;

const YES = new Set(['yes', 'true', 'on', '1']);
const NO = new Set(['no', 'false', 'off', '0']);
const CLUSTER_KEY = /^cluster([1-9][0-9]{0,3})$/i;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const HOST_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/**
 * `address[:port]` -> `address:port`, or an explanation of what is wrong (used by the parser and by
 * `formatClusterPolicy`'s assertions).
 */
export function normalizeStation(text: string): string | { error: string } {
  const m = /^([^:\s]+)(?::([0-9]{1,5}))?$/.exec(text);
  if (m === null) return { error: `expected address[:port], got '${text}'` };
  const [, addr, portText] = m;
  const port = portText === undefined ? DEFAULT_STATION_PORT : Number(portText);
  if (port < 1 || port > 0xffff) return { error: `port of '${text}' must be 1..65535` };
  const ip = IPV4.exec(addr);
  if (ip !== null) {
    if (ip.slice(1).some((o) => Number(o) > 255)) return { error: `'${addr}' has an octet above 255` };
    return `${ip.slice(1).map(Number).join('.')}:${port}`;
  }
  if (/^[0-9.]+$/.test(addr) || addr.length > 253 || !addr.split('.').every((l) => HOST_LABEL.test(l))) {
    return { error: `'${addr}' is neither an IPv4 address nor a host name` };
  }
  return `${addr.toLowerCase()}:${port}`;
}

/** Drops a trailing `; comment` / `# comment` (only after whitespace, so values may not contain one). */
function stripComment(line: string): string {
  const t = line.trim();
  if (t.startsWith(';') || t.startsWith('#')) return '';
  const m = /\s[;#]/.exec(t);
  return (m === null ? t : t.slice(0, m.index)).trim();
}

function wholeSeconds(value: string, min: number): number | null {
  if (!/^[0-9]{1,6}$/.test(value)) return null;
  const n = Number(value);
  return n >= min && n <= MAX_POLICY_SECONDS ? n : null;
}

/**
 * Parses a policy file. `fileName` only labels errors: `policy.ini:4: HeartbeatResponseTime must be ...`.
 * Throws UsageError('E_POLICY') on the first error.
 */
export function parseClusterPolicy(text: string, fileName: string): ClusterPolicy {
  if (typeof text !== 'string') throw new UsageError('E_USAGE', `policy text must be a string, got ${typeof text}`);
  if (typeof fileName !== 'string' || fileName === '') throw new UsageError('E_USAGE', 'policy file name must be a non-empty string');
  const policy = defaultClusterPolicy();
  const fail: (line: number, what: string) => never = (line, what) => {
    throw new UsageError('E_POLICY', `${fileName}:${line}: ${what}`);
  };
  const seconds = (line: number, key: string, value: string, min: number): number =>
    wholeSeconds(value, min) ?? fail(line, `${key} must be a whole number of seconds >= ${min} (at most ${MAX_POLICY_SECONDS}), got '${value}'`);
  let section: 'general' | 'cluster' | null = null;
  const sectionLine = new Map<string, number>();
  const keyLine = new Map<string, number>(); // "section.key" -> line
  const stationLine = new Map<string, number>();
  let heartbeatLine = 0;

  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const line = stripComment(lines[i]);
    if (line === '') continue;

    const header = /^\[\s*([^\]]*?)\s*\]$/.exec(line);
    if (header !== null) {
      const name = header[1].toLowerCase();
      if (name !== 'general' && name !== 'cluster') {
        fail(n, `unknown section [${header[1]}]; expected [GENERAL] or [CLUSTER]`);
      }
      const first = sectionLine.get(name);
      if (first !== undefined) fail(n, `section [${name.toUpperCase()}] already started at line ${first}`);
      sectionLine.set(name, n);
      section = name as 'general' | 'cluster';
      continue;
    }

    const eq = line.indexOf('=');
    if (eq < 0) fail(n, `expected 'Key = value' or '[SECTION]', got '${line}'`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === '') fail(n, `expected a key before '=', got '${line}'`);
    if (section === null) fail(n, `'${key}' comes before any section; start with [GENERAL] or [CLUSTER]`);
    const id = `${section}.${key.toLowerCase()}`;
    const first = keyLine.get(id);
    if (first !== undefined) fail(n, `${key} is already set at line ${first}`);
    keyLine.set(id, n);

    if (section === 'general') {
      const k = key.toLowerCase() as GeneralKey;
      if (!(k in GENERAL_KEYS)) {
        fail(n, `unknown key '${key}' in [GENERAL]; expected ${Object.values(GENERAL_KEYS).join(', ')}`);
      }
      switch (k) {
        case 'heartbeat': {
          const mode = value.toUpperCase() as HeartbeatMode;
          if (!HEARTBEAT_MODES.includes(mode)) fail(n, `Heartbeat must be NONE, DEFERRED or INSTANT, got '${value}'`);
          policy.heartbeat = mode;
          heartbeatLine = n;
          break;
        }
        case 'heartbeatresponsetime':
          policy.heartbeatResponseTime = seconds(n, 'HeartbeatResponseTime', value, 1);
          break;
        case 'heartbeatdefertime':
          policy.heartbeatDeferTime = seconds(n, 'HeartbeatDeferTime', value, 0);
          break;
        case 'randomize': {
          const v = value.toLowerCase();
          if (!YES.has(v) && !NO.has(v)) fail(n, `Randomize must be yes or no, got '${value}'`);
          policy.randomize = YES.has(v);
          break;
        }
      }
      continue;
    }

    // [CLUSTER]
    const ck = CLUSTER_KEY.exec(key);
    if (ck === null) fail(n, `unknown key '${key}' in [CLUSTER]; expected Cluster1, Cluster2, ...`);
    const stations = value.split(/\s+/).filter((s) => s !== '');
    if (stations.length === 0) fail(n, `${key} must list one or more stations as address[:port], got nothing`);
    const line_: ClusterLine = { index: Number(ck[1]), stations: [] };
    for (const s of stations) {
      const norm = normalizeStation(s);
      if (typeof norm !== 'string') fail(n, `${key}: ${norm.error}`);
      const station = norm;
      const seen = stationLine.get(station);
      if (seen !== undefined) fail(n, `${key}: station ${station} is already listed at line ${seen}`);
      stationLine.set(station, n);
      line_.stations.push(station);
    }
    policy.clusters.push(line_);
  }

  if (policy.heartbeat !== 'NONE' && policy.clusters.length === 0) {
    fail(heartbeatLine, `Heartbeat = ${policy.heartbeat} needs stations: add a [CLUSTER] section with a Cluster1 = address[:port] ... line`);
  }
  policy.clusters.sort((a, b) => a.index - b.index);
  return policy;
}

/** Throws UsageError('E_USAGE') unless `p` is a well-formed policy (as `parseClusterPolicy` returns). */
export function assertClusterPolicy(p: ClusterPolicy): void {
  const bad: (what: string) => never = (what) => {
    throw new UsageError('E_USAGE', `cluster policy: ${what}`);
  };
  if (p === null || typeof p !== 'object') bad('expected an object');
  if (!HEARTBEAT_MODES.includes(p.heartbeat)) bad(`heartbeat must be NONE, DEFERRED or INSTANT, got ${String(p.heartbeat)}`);
  const t = p.heartbeatResponseTime;
  if (!Number.isInteger(t) || t < 1 || t > MAX_POLICY_SECONDS) bad(`heartbeatResponseTime must be 1..${MAX_POLICY_SECONDS} s, got ${t}`);
  const d = p.heartbeatDeferTime;
  if (!Number.isInteger(d) || d < 0 || d > MAX_POLICY_SECONDS) bad(`heartbeatDeferTime must be 0..${MAX_POLICY_SECONDS} s, got ${d}`);
  if (typeof p.randomize !== 'boolean') bad('randomize must be a boolean');
  if (!Array.isArray(p.clusters)) bad('clusters must be an array');
  const indices = new Set<number>();
  const seen = new Set<string>();
  for (const c of p.clusters) {
    if (!Number.isInteger(c.index) || c.index < 1 || c.index > 9999 || indices.has(c.index)) {
      bad(`cluster index must be a unique integer 1..9999, got ${c.index}`);
    }
    indices.add(c.index);
    if (!Array.isArray(c.stations) || c.stations.length === 0) bad(`Cluster${c.index} has no stations`);
    for (const s of c.stations) {
      if (normalizeStation(s) !== s) bad(`Cluster${c.index}: station must be address:port, got ${JSON.stringify(s)}`);
      if (seen.has(s)) bad(`station ${s} is listed twice`);
      seen.add(s);
    }
  }
  if (p.heartbeat !== 'NONE' && seen.size === 0) bad(`Heartbeat = ${p.heartbeat} needs at least one station`);
}

/** Writes a policy back in the file syntax; `parseClusterPolicy(formatClusterPolicy(p), f)` equals `p`. */
export function formatClusterPolicy(p: ClusterPolicy): string {
  assertClusterPolicy(p);
  const out = [
    '[GENERAL]',
    `Heartbeat = ${p.heartbeat}`,
    `HeartbeatResponseTime = ${p.heartbeatResponseTime}`,
    `HeartbeatDeferTime = ${p.heartbeatDeferTime}`,
    `Randomize = ${p.randomize ? 'yes' : 'no'}`,
  ];
  if (p.clusters.length > 0) {
    out.push('', '[CLUSTER]');
    for (const c of [...p.clusters].sort((a, b) => a.index - b.index)) out.push(`Cluster${c.index} = ${c.stations.join(' ')}`);
  }
  return out.join('\n') + '\n';
}

const utf8 = new TextEncoder();
const ORDER_LABEL = utf8.encode('lifeline station order v1');

function lengthPrefixed(s: string): Uint8Array {
  const b = utf8.encode(s);
  const len = new Uint8Array(4);
  putU32(len, 0, b.length);
  return concat(len, b);
}

/**
 * The order in which a NIC uses its stations: every ClusterN line in N order, stations as written.
 * With `Randomize = yes` that list is shuffled (Fisher-Yates) by a deterministic stream keyed by
 *
 *   K = SHA-256("lifeline station order v1" || len(seed) || seed || len(nicId) || nicId)
 *   word k = bytes of SHA-256(K || k as u32 BE), k = 0, 1, ...   (32-bit words, rejection-sampled)
 *
 * so a fleet spreads evenly over the stations while each NIC gets the same order after every restart.
 * `seed` (default '') lets a lab draw a different, still reproducible, spread.
 */
export function stationOrder(p: ClusterPolicy, nicId: string, seed = ''): string[] {
  assertClusterPolicy(p);
  if (typeof nicId !== 'string' || nicId === '') throw new UsageError('E_USAGE', 'stationOrder needs a non-empty NIC id');
  if (typeof seed !== 'string') throw new UsageError('E_USAGE', 'stationOrder seed must be a string');
  const order = p.clusters.flatMap((c) => c.stations);
  if (!p.randomize || order.length < 2) return order;

  const key = sha256(concat(ORDER_LABEL, lengthPrefixed(seed), lengthPrefixed(nicId)));
  let block = new Uint8Array(0);
  let counter = 0;
  let used = 0;
  const counterBytes = new Uint8Array(4);
  const nextWord = (): number => {
    if (used === block.length) {
      putU32(counterBytes, 0, counter++);
      block = sha256(concat(key, counterBytes));
      used = 0;
    }
    const w = ((block[used] << 24) | (block[used + 1] << 16) | (block[used + 2] << 8) | block[used + 3]) >>> 0;
    used += 4;
    return w;
  };
  /** Uniform in 0..bound-1: reject the top partial range of 2^32 so no index is favoured. */
  const uniform = (bound: number): number => {
    const limit = 0x1_0000_0000 - (0x1_0000_0000 % bound);
    for (;;) {
      const w = nextWord();
      if (w < limit) return w % bound;
    }
  };
  for (let i = order.length - 1; i > 0; i--) {
    const j = uniform(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
