/**
 * mgmt-station's side of the station daemon's control API (mgmt-station/daemon.ts): verbs forwarded to the running
 * daemon of this station and store, its status, and the check that no second daemon starts. Light on purpose: a
 * forwarded verb loads this, the argument tables and node:http, and nothing of the store or the protocol.
 */
import http from 'node:http';
import { LifelineError, type ErrorCode } from '../common/errors.js';
import { fmtCounts, printJson } from '../lib/cli.js';
import { ControlClient, DEFAULT_CONTROL, controlTimeoutMs, keepAliveAgent } from '../lib/control-client.js';
import { runFleet, type Skipped } from '../lib/fleet-run.js';
import { isFleetTarget, needsLookup, resolveTargets, type KnownNic } from '../lib/nic-targets.js';
import { saToJson } from '../lib/sa-json.js';
import type { Announced } from './announce.js';
import type { CommandKind } from './core/session.js';
import { COMMANDS, READS, describe, describeExchange, describeManualSa, emulatorNics, manualSaOf, readPsk } from './cli-text.js';

const PROG = 'mgmt-station';

/** How much longer than the verb's own timeout the CLI waits for the daemon's answer (lease, store, queueing). */
const DAEMON_ANSWER_MARGIN_MS = 5000;

/**
 * `mgmt-station status`: the daemon's view (leases it polls, host states, refreshes, what it dropped by reason).
 */
export async function daemonStatus(d: Announced, json: boolean): Promise<void> {
  const st = await daemonJson(d, 'GET', '/v1/status', 10000).catch((e: unknown) => {
    if (!(e instanceof DaemonRequestFailed)) throw e;
    if (e.timedOut) throw new LifelineError('E_TIMEOUT', `the station daemon at ${d.control} took GET /v1/status but did not answer within ${e.timeoutMs} ms; is it stopped (SIGSTOP) or overloaded?`);
    throw new LifelineError('E_UNREACHABLE', `cannot get the status of the station daemon at ${d.control}: ${e.detail}`);
  });
  if (st.ok === false) throw new LifelineError(st.error.code, st.error.message);
  if (json) return printJson(st);
  process.stdout.write(`station ${st.id} (pid ${st.pid}); ${fmtCounts('dropped', st.socketDrops)} on its socket; ${fmtCounts('heartbeats', st.heartbeats)}\n`);
  for (const n of st.nics) {
    const retry = n.retryRefreshAtIso ? ` retry-refresh-at=${n.retryRefreshAtIso}` : '';
    process.stdout.write(`${String(n.id).padEnd(8)} host=${n.host} refreshes=${n.refreshes}${retry} ${fmtCounts('dropped', n.dropped)}${n.lastError ? ' last-error: ' + n.lastError : ''}\n`);
  }
}

/**
 * One daemon per station id and store: a second one would take over the announce file (the CLI would forward to
 * it alone) and, on stopping, remove it while the first still runs. A file left by a dead daemon (its pid gone,
 * or nothing listening at its address) does not count.
 */
export async function refuseSecondDaemon(announce: string, stationId: string, runningDaemon: (file: string) => Announced | null): Promise<void> {
  const d = runningDaemon(announce);
  if (!d) return;
  const st = await daemonJson(d, 'GET', '/v1/status', 3000).catch((e: unknown) => {
    if (e instanceof DaemonRequestFailed && !e.sent) return null; // nothing listens there: a stale file
    throw new LifelineError('E_RUNNING', `a daemon of station '${stationId}' (pid ${d.pid}, ${announce}) takes connections at ${d.control} but did not answer (${(e as Error).message}); stop it (kill ${d.pid}) before starting another`);
  });
  if (st) throw new LifelineError('E_RUNNING', `station '${stationId}' already has a daemon on this store: pid ${d.pid} at http://${d.control}; stop it first (kill ${d.pid}) or use another --id`);
}

/**
 * A request to this station's daemon that got no JSON answer. `sent`: the connection was made, so the daemon
 * may have received the request and acted on it; when false (refused), the daemon was not there at all.
 */
export class DaemonRequestFailed extends Error {
  constructor(readonly sent: boolean, readonly timedOut: boolean, readonly timeoutMs: number, readonly detail: string) {
    super(detail);
  }
}

/**
 * One JSON request to this station's daemon (mgmt-station/daemon.ts). Resolves with the body, error answers
 * included ({ ok: false, error }); `body` goes as JSON. Rejects with DaemonRequestFailed: `sent` false when the connection was
 * refused (no daemon listens: a verb may then run here instead); `sent` true when the daemon took the
 * connection and then reset it, hung up, answered non-JSON or did not answer within `timeoutMs` (the verb may
 * have run there: it must not run again here). `agent`: a keep-alive agent (a fleet verb's requests); a request on a
 * connection it kept open counts as sent.
 */
export function daemonJson(d: Pick<Announced, 'control' | 'token'>, method: 'GET' | 'POST', path: string, timeoutMs: number, body?: object, agent?: http.Agent): Promise<any> {
  const [host, port] = d.control.split(':');
  const data = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string | number> = data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) };
  if (d.token) headers.authorization = `Bearer ${d.token}`;
  return new Promise((resolve, reject) => {
    let sent = false;
    let timedOut = false;
    const req = http.request({ host, port: Number(port), method, path, headers, timeout: timeoutMs, agent: agent ?? false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new DaemonRequestFailed(true, false, timeoutMs, `it answered ${method} ${path} with something that is not JSON (HTTP ${res.statusCode})`));
        }
      });
      res.on('error', (e) => reject(new DaemonRequestFailed(true, timedOut, timeoutMs, `the answer was cut off: ${e.message}`)));
    });
    req.on('socket', (s) => {
      if (!s.connecting) sent = true;
      else s.once('connect', () => (sent = true));
    });
    req.on('timeout', () => {
      timedOut = true;
      req.destroy();
    });
    req.on('error', (e) => reject(new DaemonRequestFailed(sent, timedOut, timeoutMs, timedOut ? `no answer within ${timeoutMs} ms` : e.message)));
    req.end(data);
  });
}

/**
 * The daemon took a verb and was lost before answering (killed, stopped, crashed): the verb may have run
 * there, so it is not run again here (DESIGN §5: a command runs at most once unless acknowledged). A command
 * the daemon logged stays 'sent' until the next session of this station completes it with its recorded
 * identity (the NIC answers from its response cache if it executed it): `mgmt-station log NIC` shows which.
 */
function lostVerb(e: DaemonRequestFailed, daemon: string, verb: string, nic: string): LifelineError {
  const what = e.timedOut ? `did not answer ${verb} ${nic} within ${e.timeoutMs} ms` : `took ${verb} ${nic} and was lost before answering (${e.detail})`;
  if (READS[verb]) return new LifelineError(e.timedOut ? 'E_TIMEOUT' : 'E_UNREACHABLE', `the station daemon at ${daemon} ${what}; a read changes nothing: retry it`);
  const check = COMMANDS.includes(verb as CommandKind) ? `'mgmt-station log ${nic}' shows whether it was acknowledged` : `'mgmt-station list' shows the SA generations`;
  return new LifelineError('E_OUTCOME_UNKNOWN', `the station daemon at ${daemon} ${what}; it may or may not have run and was not run again here: ${check} before retrying`);
}

/**
 * The NICs this station's daemon lists (GET /v1/nics), as TARGET resolution wants them; null when no daemon
 * listens (nothing was sent: the verb runs here). The listing changes nothing: a daemon lost while answering it has
 * run nothing, and the verb may be retried.
 */
async function daemonNics(d: Announced): Promise<(KnownNic & { enrolled: boolean; ownedBy: string | null })[] | null> {
  const known = await daemonJson(d, 'GET', '/v1/nics', 10000).catch((e: unknown) => {
    if (!(e instanceof DaemonRequestFailed)) throw e;
    if (!e.sent) return null;
    throw new LifelineError(e.timedOut ? 'E_TIMEOUT' : 'E_UNREACHABLE', `the station daemon at ${d.control} did not list its NICs (${e.detail}); nothing was run: retry`);
  });
  if (known === null) return null;
  if (known.ok === false) throw new LifelineError(known.error.code, known.error.message);
  return (known.nics as { id: string; address?: string; ports?: { clear: number; secure: number; ike: number }; enrolled: boolean; ownedBy?: string | null }[]).map((n) => ({
    id: n.id, address: n.address ?? '', ports: n.ports ? [n.ports.clear, n.ports.secure, n.ports.ike] : [], enrolled: n.enrolled, ownedBy: n.ownedBy ?? null,
  }));
}

/**
 * A read, a command or a refresh run by this station's daemon: one NIC (by id, or by address looked up in the
 * daemon's list), or a fleet, each NIC a request, `concurrency` at a time, with the NICs another live station owns skipped
 * (and a refresh's NICs not enrolled left out). Resolves false when no daemon listens (nothing was sent: the verb
 * then runs here); a daemon that took a request and was lost is an error, not a second run.
 */
export async function forwardVerb(d: Announced, verb: string, target: string, json: boolean, timeoutMs: number, concurrency: number): Promise<boolean> {
  // The daemon answers within this timeout for reads and commands, at least 5 s for a refresh (as it would
  // itself), and the CLI waits that long plus a margin.
  const waitMs = (verb === 'refresh' ? Math.max(timeoutMs, 5000) : timeoutMs) + DAEMON_ANSWER_MARGIN_MS;
  // A fleet's requests share connections kept open (keepAliveAgent); one NIC's goes on a connection of its own.
  let agent: http.Agent | undefined;
  const post = (nic: string) =>
    daemonJson(d, 'POST', `/v1/nics/${encodeURIComponent(nic)}/${verb}?timeout=${timeoutMs}`, waitMs, undefined, agent).catch((e: unknown) => {
      // The daemon was not there when we connected (a daemon killed with -9 leaves its file behind, and its
      // pid may have been reused): nothing was sent, so the verb runs here.
      if (e instanceof DaemonRequestFailed && !e.sent) return null;
      throw e instanceof DaemonRequestFailed ? lostVerb(e, d.control, verb, nic) : e;
    });
  const text = (r: any) => (verb === 'refresh' ? describeExchange(r) : describe(r));
  let nic = target;
  if (needsLookup(target)) {
    const known = await daemonNics(d);
    if (known === null) return false;
    if (isFleetTarget(target)) {
      const ids = resolveTargets(target, known.filter((n) => verb !== 'refresh' || n.enrolled));
      const owner = new Map(known.map((n) => [n.id, n.ownedBy]));
      const skipped: Skipped[] = ids.filter((id) => owner.get(id)).map((id) => ({ nic: id, owner: owner.get(id)! }));
      agent = keepAliveAgent(concurrency);
      try {
        await runFleet({
          // A line per NIC for reads and commands; a refresh says only the summary, as without a daemon.
          prog: PROG, verb, ids: ids.filter((id) => !owner.get(id)), json, skipped, viaDaemon: true, concurrency, line: verb === 'refresh' ? undefined : (_n, r) => text(r),
          one: (id) => daemonResult(post(id)),
        });
      } finally {
        agent.destroy();
      }
      return true;
    }
    nic = resolveTargets(target, known)[0];
  }
  return printDaemonAnswer(await post(nic), json, text);
}

/** One NIC's answer from the daemon: false when no daemon took it (null), its error thrown, else printed. */
function printDaemonAnswer(r: any, json: boolean, text: (r: any) => string): boolean {
  if (r === null) return false;
  if (!r.ok) throw new LifelineError(r.error.code, r.error.message);
  if (json) printJson(r);
  else process.stdout.write(`${text(r)} [via daemon]\n`);
  return true;
}

/**
 * Run enroll or sa manual in this station's running daemon (docs/STATION.md): a fleet's NICs are listed
 * here (the emulator's: the store may not know them yet) and the daemon runs each, `concurrency` at a time, with progress
 * on a TTY. The PSK file is read and each manual SA made here, and sent to the daemon on loopback. Resolves false
 * when no daemon listens (nothing was sent: the verb then runs here); a daemon that took a request and was lost is
 * an error, not a second run.
 */
export async function forwardKeying(d: Announced, verb: 'enroll' | 'sa', target: string, values: Record<string, string | boolean | undefined>, json: boolean, timeoutMs: number, concurrency: number): Promise<boolean> {
  const daemon = d.control;
  const emulator = String(values.emulator ?? DEFAULT_CONTROL);
  const daemonVerb = verb === 'sa' ? 'sa-manual' : verb;
  const psk = verb === 'enroll' ? Buffer.from(readPsk(String(values['psk-file'] ?? ''))).toString('hex') : '';
  // A manual SA per NIC: never the same keys for two NICs.
  const body = () => (verb === 'enroll' ? { psk, emulator } : { emulator, sa: saToJson(manualSaOf(values)) });
  // The daemon gets `timeoutMs` (?timeout=) and gives a key exchange at least what the local path gives it
  // (enroll 10 s, sa manual 5 s for the emulator's control API); the CLI waits that long plus
  // DAEMON_ANSWER_MARGIN_MS per request.
  const waitMs = Math.max(timeoutMs, verb === 'enroll' ? 10000 : 5000) + DAEMON_ANSWER_MARGIN_MS;
  // A fleet's requests share connections kept open (keepAliveAgent); one NIC's goes on a connection of its own.
  let agent: http.Agent | undefined;
  // Refused (no daemon listens): null, the verb runs here. Taken and then lost: it may have run there; not again here.
  const post = (nic: string) =>
    daemonJson(d, 'POST', `/v1/nics/${encodeURIComponent(nic)}/${daemonVerb}?timeout=${timeoutMs}`, waitMs, body(), agent).catch((e: unknown) => {
      if (e instanceof DaemonRequestFailed && !e.sent) return null;
      throw e instanceof DaemonRequestFailed ? lostVerb(e, daemon, verb === 'sa' ? 'sa manual' : verb, nic) : e;
    });
  const text = (r: any) => (verb === 'sa' ? describeManualSa(r) : describeExchange(r));
  if (!isFleetTarget(target)) {
    // An address is the emulator's to resolve, as for a NIC the store does not know yet.
    return printDaemonAnswer(await post(target), json, text);
  }
  // Is the daemon there at all? (A refused listing: the verb runs here.)
  if ((await daemonNics(d)) === null) return false;
  const ids = resolveTargets(target, await emulatorNics(ControlClient.parse(emulator, '--emulator', controlTimeoutMs(timeoutMs))));
  agent = keepAliveAgent(concurrency);
  try {
    await runFleet({
      prog: PROG, verb: verb === 'sa' ? 'sa manual' : verb, ids, json, viaDaemon: true, concurrency,
      line: verb === 'sa' ? (_n, r) => text(r) : undefined,
      one: (id) => daemonResult(post(id)),
    });
  } finally {
    agent.destroy();
  }
  return true;
}

/** One NIC's answer from the daemon in a fleet run: its result, or its error as thrown (gone: E_UNREACHABLE). */
export async function daemonResult<R extends { ok: boolean; error?: { code: string; message: string } }>(answer: Promise<R | null>): Promise<Omit<R, 'ok'>> {
  const r = await answer;
  if (r === null) throw new LifelineError('E_UNREACHABLE', 'the station daemon went away');
  if (!r.ok) throw new LifelineError(r.error!.code as ErrorCode, r.error!.message);
  const { ok: _ok, ...rest } = r;
  return rest;
}
