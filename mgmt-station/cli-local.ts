/**
 * The mgmt-station verbs this process runs itself (mgmt-station/cli.ts loads this only then): with the store, the
 * station's sessions and key exchanges, `serve`, `replay`, and the store's reports (list, log, audit, keys). A verb
 * that the running daemon of this station takes never loads this file, the store drivers or the protocol.
 */
import { readFileSync } from 'node:fs';
import { writeSecretFile } from '../lib/secret-file.js';
import { DEFAULT_CONTROL as DEFAULT_DAEMON_CONTROL, StationDaemon, validateLifetime } from './daemon.js';
import { announcedStore, type Announced } from './announce.js';
import { parseTable } from './replay/table.js';
import { replayTable } from './replay/runner.js';
import { createLogger, type LogFormat } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { StationContext, emulatorControl } from './context.js';
import { DEFAULT_KEY_FILE } from './cli-spec.js';
import { ControlClient, DEFAULT_CONTROL, controlTimeoutMs } from '../lib/control-client.js';
import { EXIT, intOption, parseHostPort, printJson, progress, requireLoopback } from '../lib/cli.js';
import { runFleet, type Skipped } from '../lib/fleet-run.js';
import { isFleetTarget, needsLookup, resolveTargets, type KnownNic } from '../lib/nic-targets.js';
import { DEFAULT_ANSWER_POLL_US } from '../lib/answer-poll.js';
import { MAX_BUSY_POLL_US } from '../lib/poll-loop.js';
import { LifelineError, UsageError } from '../common/errors.js';
import { espSaUatLines } from './wireshark-keys.js';
import { ikev2DecryptionTableLine } from '../protocol/index.js';
import type { CommandKind } from './core/session.js';
import { READS, describe, describeExchange, describeManualSa, emulatorNics, exchangeJson, isCommand, manualSaOf, readPsk, requestJson } from './cli-text.js';
import { refuseSecondDaemon } from './cli-daemon.js';

const PROG = 'mgmt-station';

/** A parsed command line that no daemon took (mgmt-station/cli.ts). */
export interface LocalVerb {
  verb: string;
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  json: boolean;
  /** The NIC(s) the verb names (TARGET), if it names any. */
  target: string | undefined;
  timeoutMs: number;
  /** NICs a fleet TARGET runs at once (--concurrency). */
  concurrency: number;
  storeUrl: string;
  stationId: string;
  /** This station's announce file, and the daemon it names if one runs (announce.ts). */
  announce: string;
  runningDaemon: (file: string) => Announced | null;
}

export async function runLocal(o: LocalVerb): Promise<void> {
  const { verb, positionals, values, json, target, timeoutMs, concurrency, storeUrl, stationId, announce, runningDaemon } = o;
  const num = (v: string | undefined, def: number, name: string) => intOption(v, def, name, 1);
  if (verb === 'replay') return replay(positionals[1]!, json);
  // Address options and the log format are checked before anything is opened or created (serve's; the CLI's own
  // socket takes any local port).
  const listen = hostPortOption('--listen', (values.listen as string | undefined) ?? '127.0.0.1:0');
  const control = hostPortOption('--control', (values.control as string | undefined) ?? DEFAULT_DAEMON_CONTROL);
  requireLoopback('--control', (values.control as string | undefined) ?? DEFAULT_DAEMON_CONTROL, control.host); // the daemon's control API: loopback only
  const logFormat = values['log-format'] ?? 'text';
  if (logFormat !== 'text' && logFormat !== 'json') throw new UsageError('E_USAGE', `--log-format must be text or json, got '${logFormat}'`);
  const busyPollUs = intOption(values['busy-poll-us'] as string | undefined, DEFAULT_ANSWER_POLL_US, 'busy-poll-us', 0, MAX_BUSY_POLL_US);
  if (verb === 'serve') await refuseSecondDaemon(announce, stationId, runningDaemon);
  // Bad options are usage errors found before anything is opened or created (the store, the cluster key): a bad
  // PSK file, manual SA options, the emulator's address, serve's intervals.
  const enrollPsk = verb === 'enroll' ? readPsk((values['psk-file'] as string | undefined) ?? '') : null;
  // The emulator control API, for the verbs that use it (sa, enroll, refresh).
  const emu = verb === 'sa' || verb === 'enroll' || verb === 'refresh' ? ControlClient.parse((values.emulator as string | undefined) ?? DEFAULT_CONTROL, '--emulator', controlTimeoutMs(timeoutMs)) : null;
  const leaseMs = num(values['lease-ms'] as string | undefined, 10000, 'lease-ms');
  const manual = verb === 'sa' ? manualSaOf(values) : null;
  const serveTimes = verb === 'serve'
    ? {
        refreshIntervalS: num(values['refresh-interval'] as string | undefined, 3600, 'refresh-interval'),
        maxDownTimeS: intOption(values['max-down-time'] as string | undefined, 86400, 'max-down-time'),
        lifetimeS: values.lifetime !== undefined ? num(values.lifetime as string, 0, 'lifetime') : Infinity,
        pollIntervalMs: num(values['poll-interval'] as string | undefined, 5000, 'poll-interval'),
        sharing: sharingOf(values.sharing as string | undefined),
      }
    : null;
  if (serveTimes) validateLifetime(serveTimes);
  const ikeRekeyS = verb === 'serve' ? num(values['ike-rekey-interval'] as string | undefined, 14400, 'ike-rekey-interval') : undefined;
  const ctx = await StationContext.open({
    store: storeUrl,
    keyFile: (values['cluster-key'] as string | undefined) ?? DEFAULT_KEY_FILE,
    stationId,
    leaseMs,
    // Only these verbs may create a store and, with a new store, its cluster key: elsewhere a typo is an error.
    create: verb === 'enroll' || verb === 'sa' || verb === 'serve',
    bind: listen.host,
    port: listen.port,
    busyPollUs,
    ikeRekeyMs: ikeRekeyS !== undefined ? ikeRekeyS * 1000 : undefined,
  });
  if (verb === 'serve') {
    // Per NIC and reason at most 5 lines per 10 s, the rest summarised (lib/log-limit.ts). Info lines are written
    // 100 ms at a time (a fleet verb logs one or two per NIC; warnings at once): lib/log.ts batchMs.
    const log = createLogger({ format: logFormat as LogFormat, component: PROG, limit: new LogLimiter(), batchMs: 100 });
    const daemon = new StationDaemon(ctx, {
      ...serveTimes!,
      timeoutMs,
      controlHost: control.host,
      controlPort: control.port,
      announceFile: announce,
      store: announcedStore(storeUrl),
      leaseMs,
    }, log);
    // Signal handlers first: whoever reads the ready line may stop the daemon at once.
    const stop = () => void daemon.stop().finally(() => {
      log.flush();
      process.exit(EXIT.OK);
    });
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    // The station's UDP socket first (--listen), then the control API (--control): a bad address is named.
    await ctx.udp().catch((e: unknown) => {
      throw addressError(e, '--listen', (values.listen as string | undefined) ?? '127.0.0.1:0');
    });
    await daemon.start().catch((e: unknown) => {
      throw addressError(e, '--control', (values.control as string | undefined) ?? DEFAULT_DAEMON_CONTROL);
    });
    // `announce`: the file (0600) with the daemon's address and the credential its control API wants.
    const line = { ready: true, id: stationId, pid: process.pid, control: `${control.host}:${daemon.port}`, store: ctx.store.url, announce };
    process.stdout.write((json ? JSON.stringify(line) : `mgmt-station: station '${stationId}' serving on http://${line.control} (store ${line.store})`) + '\n');
    return;
  }
  try {
    // The NICs this station's store knows, as TARGET resolution wants them (lib/nic-targets.ts).
    const stored = async (): Promise<(KnownNic & { enrolled: boolean })[]> =>
      (await ctx.store.listNics()).map((n) => ({ id: n.id, address: n.address, ports: [n.clearPort, n.securePort, n.ikePort], enrolled: n.meta.enrolled === true }));
    // A fleet's NICs another live station owns are that station's: skipped and counted, not tried.
    const fleetOf = async (known: KnownNic[]): Promise<{ ids: string[]; skipped: Skipped[] }> => {
      const ids: string[] = [];
      const skipped: Skipped[] = [];
      const owners = await ctx.ownersElsewhere();
      for (const id of resolveTargets(target!, known)) {
        const owner = owners.get(id);
        if (owner) skipped.push({ nic: id, owner });
        else ids.push(id);
      }
      return { ids, skipped };
    };
    const one = async (): Promise<string> => (needsLookup(target!) ? resolveTargets(target!, await stored())[0] : target!);
    if (READS[verb] || isCommand(verb)) {
      const run = async (nic: string) => {
        const s = await ctx.session(nic);
        return READS[verb] ? s.read(READS[verb], timeoutMs) : s.command(verb as CommandKind, timeoutMs);
      };
      if (isFleetTarget(target!)) {
        const { ids, skipped } = await fleetOf(await stored());
        await runFleet({ prog: PROG, verb, ids, one: async (nic) => requestJson(await run(nic)), line: (_n, r) => describe(r), json, skipped, concurrency });
        return;
      }
      const r = await run(await one());
      if (json) printJson({ ok: true, ...requestJson(r) });
      else process.stdout.write(describe(r) + '\n');
      return;
    }
    switch (verb) {
      case 'sa': {
        if (isFleetTarget(target!)) {
          const ids = resolveTargets(target!, await emulatorNics(emu!));
          await runFleet({ prog: PROG, verb: 'sa manual', ids, one: (nic) => ctx.installManualSa(emulatorControl(emu!), nic, manualSaOf(values)), line: (_n, r) => describeManualSa(r), json, concurrency });
          return;
        }
        const r = await ctx.installManualSa(emulatorControl(emu!), target!, manual!);
        if (json) printJson({ ok: true, ...r });
        else process.stdout.write(describeManualSa(r) + '\n');
        return;
      }
      case 'enroll':
      case 'refresh': {
        const psk = enrollPsk;
        // Key exchanges get at least 10 s for an enrolment and 5 s for a refresh, as in the daemon (daemon.ts).
        const kx = Math.max(timeoutMs, psk ? 10000 : 5000);
        const exchange = async (nicId: string) => {
          if (psk) return ctx.enroll(emulatorControl(emu!), nicId, psk, kx);
          const nic = await ctx.store.getNic(nicId);
          if (!nic) throw new LifelineError('E_NOT_FOUND', `NIC '${nicId}' is not enrolled; run 'mgmt-station enroll ${nicId} --psk-file FILE'`);
          return ctx.keyExchange(nic, 'refresh', kx);
        };
        if (isFleetTarget(target!)) {
          // enroll: NICs of the emulator; refresh: the enrolled NICs this station owns or can take (a NIC whose
          // lease another live station holds is that station's to refresh, and is skipped).
          const fleet = psk ? { ids: resolveTargets(target!, await emulatorNics(emu!)), skipped: [] } : await fleetOf((await stored()).filter((n) => n.enrolled));
          await runFleet({ prog: PROG, verb, ids: fleet.ids, one: async (nic) => exchangeJson(await exchange(nic)), json, skipped: fleet.skipped, concurrency });
          return;
        }
        // enroll by address: the emulator resolves it (it knows NICs the store does not yet).
        const r = await exchange(psk ? target! : await one());
        if (json) printJson({ ok: true, ...exchangeJson(r) });
        else process.stdout.write(describeExchange(r) + '\n');
        return;
      }
      case 'audit': {
        const check = async (nic: string) => {
          await requireNic(ctx, nic);
          const rep = await ctx.store.auditCommandLog(nic);
          const commands = rep.ok ? (await ctx.store.listCommands(nic)).length : null;
          return { ...rep, commands };
        };
        const text = (nic: string, rep: Awaited<ReturnType<typeof check>>) => rep.ok
          ? `${nic}: command log intact (${rep.entries} entries: ${rep.commands} command${rep.commands === 1 ? '' : 's'} and their outcomes; head entry ${rep.head?.index ?? 0})`
          : `${nic}: command log TAMPERED: first bad entry ${rep.firstBadIndex}: ${rep.problem}`;
        if (isFleetTarget(target!)) {
          const ids = resolveTargets(target!, await stored());
          await runFleet({ prog: PROG, verb, ids, json, line: text, concurrency: 1, one: async (nic) => {
            const rep = await check(nic);
            if (!rep.ok) throw new LifelineError('E_TAMPERED', text(nic, rep).replace(`${nic}: `, ''));
            return rep;
          } });
          return;
        }
        const nic = await one();
        const rep = await check(nic);
        if (json) printJson(rep);
        else process.stdout.write(text(nic, rep) + '\n');
        if (!rep.ok) process.exitCode = EXIT.FAILED;
        return;
      }
      case 'list': {
        const out = [];
        for (const n of await ctx.store.listNics()) {
          const sas = await ctx.store.listSas(n.id);
          const lease = await ctx.store.getLease(n.id);
          out.push({
            id: n.id, address: n.address, ports: { clear: n.clearPort, secure: n.securePort, ike: n.ikePort },
            owner: lease?.owner ?? null, epoch: lease?.epoch ?? 0,
            sas: sas.filter((s) => s.state !== 'retired').map((s) => ({ generation: s.pair.generation, state: s.state, origin: s.pair.origin, policy: s.pair.policy, transform: s.pair.transform })),
          });
        }
        if (json) return printJson(out);
        for (const n of out) {
          // The store's slots in the words and order nic-emulator status uses for the NIC's.
          const slot = (state: string) => n.sas.filter((s) => s.state === state).map((s) => s.generation).join('+') || '-';
          process.stdout.write(`${n.id.padEnd(8)} ${n.address}:${n.ports.secure}  owner=${n.owner ?? '-'} epoch=${n.epoch}  sa active=${slot('active')} previous=${slot('previous')} pending=${slot('pending')}\n`);
        }
        return;
      }
      case 'keys': {
        const file = values.wireshark as string | undefined;
        const ikev2 = values.ikev2 as string | undefined;
        if (!file && !ikev2) throw new UsageError('E_USAGE', 'usage: mgmt-station keys --wireshark FILE [--ikev2 FILE]');
        const esp = ['# esp_sa UAT lines written by mgmt-station (Wireshark 4.0, 8 columns); keys are secrets'];
        const ike: string[] = [];
        let n = 0;
        for (const nic of await ctx.store.listNics()) {
          for (const s of await ctx.store.listSas(nic.id)) {
            if (s.ike) {
              const line = ikev2DecryptionTableLine(s.ike);
              if (!ike.includes(line)) ike.push(line);
            }
            // Retired SAs too: a capture that spans refreshes holds packets under them.
            esp.push(...espSaUatLines(nic, s.pair, s.state));
            n++;
          }
        }
        if (file) writeKeyFile('--wireshark', file, esp.join('\n') + '\n');
        if (ikev2) writeKeyFile('--ikev2', ikev2, ike.map((l) => l + '\n').join(''));
        if (json) printJson({ ok: true, file: file ?? null, sas: n, ikev2File: ikev2 ?? null, ikeSas: ike.length });
        else process.stdout.write(`wrote ${[file ? `${n} ESP SA(s) to ${file}` : '', ikev2 ? `${ike.length} IKE SA(s) to ${ikev2}` : ''].filter(Boolean).join(', ')}\n`);
        return;
      }
      case 'events': {
        // events [NIC] [--follow] [--json] (docs/ALERTS.md): from the store, so it needs no daemon.
        const nic = positionals[1];
        if (nic !== undefined) await requireNic(ctx, nic);
        const stop = new Promise<void>((r) => {
          process.once('SIGINT', () => r());
          process.once('SIGTERM', () => r());
        });
        const { eventsVerb } = await import('./events-verb.js');
        await eventsVerb(ctx.store, nic, values.follow === true, json, stop);
        return;
      }
      case 'log': {
        const commands = async (nic: string) => {
          await requireNic(ctx, nic);
          // Times as ISO 8601 (`at`, as the emulator's exec-log has them); the store's epoch-ms `time` is left out.
          return (await ctx.store.listCommands(nic)).map(({ time, ...c }, i) => ({ number: i + 1, ...c, at: new Date(time).toISOString() }));
        };
        const lines = (cmds: Awaited<ReturnType<typeof commands>>, prefix = '') =>
          cmds.map((c) => `${prefix}${c.number} ${c.at} ${c.command} entry=${c.index} seq=${c.rmcpSeq} tag=${c.asfTag} ${c.outcome} by ${c.outcomeStation}@${c.outcomeEpoch}`).join('\n');
        if (isFleetTarget(target!)) {
          const ids = resolveTargets(target!, await stored());
          await runFleet({ prog: PROG, verb, ids, json, concurrency: 1, one: async (nic) => ({ commands: await commands(nic) }), line: (nic, r) => lines(r.commands, `${nic} `) || `${nic}: no commands` });
          return;
        }
        const cmds = await commands(await one());
        if (json) return printJson(cmds);
        if (cmds.length) process.stdout.write(lines(cmds) + '\n');
        return;
      }
      default:
        throw new UsageError('E_USAGE', `unknown command '${verb}'; run 'mgmt-station --help'`);
    }
  } finally {
    await ctx.close();
  }
}

/** E_NOT_FOUND for a NIC this station's store does not know (as a secure verb says it). */
async function requireNic(ctx: StationContext, nic: string): Promise<void> {
  if (!(await ctx.store.getNic(nic))) throw new LifelineError('E_NOT_FOUND', `NIC '${nic}' is not known to this station; 'mgmt-station list' shows the NICs it knows`);
}

/** HOST:PORT of an address option (port 0 = any); E_USAGE naming the option when it is not one. */
function hostPortOption(name: string, value: string): { host: string; port: number } {
  try {
    return parseHostPort(value, 0);
  } catch {
    throw new UsageError('E_USAGE', `${name} ${value}: expected HOST:PORT with a port from 0 (any) to 65535`);
  }
}

/**
 * A socket that could not bind the address the user gave: a one-line E_USAGE (exit 2) naming the option and
 * the address, since a different address is the fix. Anything else is passed on unchanged.
 */
function addressError(e: unknown, option: string, address: string): unknown {
  if (e instanceof LifelineError) return e;
  const why: Record<string, string> = {
    EADDRINUSE: 'the address is in use (another daemon or program listens there); pick another port, or 0 for any',
    EADDRNOTAVAIL: 'not an address of this host; use a local address such as 127.0.0.1',
    ENOTFOUND: 'unknown host name',
    EAI_AGAIN: 'host name lookup failed',
    EACCES: `binding this port needs root or cap_net_bind_service (docs/EMULATOR.md, "Running without root"); use a port above 1023`,
  };
  const code = (e as NodeJS.ErrnoException)?.code;
  return code && why[code] ? new UsageError('E_USAGE', `${option} ${address}: ${why[code]} (${code})`) : e;
}

async function replay(file: string, json: boolean): Promise<void> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError('E_USAGE', `cannot read table ${file}: ${(e as Error).message}`);
  }
  const rows = parseTable(text, file);
  const bar = progress(`replaying ${rows.length} rows`);
  const results = await replayTable(rows, (_r, i) => bar.update(i + 1, rows.length));
  bar.done();
  const bad = results.filter((r) => !r.ok);
  if (json) printJson({ ok: bad.length === 0, rows: results.map((r) => ({ id: r.row.id, line: r.row.line, client: r.row.client, station: r.row.station, action: r.row.action, expected: r.row.expect, observed: r.observed, ok: r.ok, detail: r.detail, ms: Math.round(r.ms) })) });
  else {
    const w = (s: string, n: number) => s.padEnd(n);
    process.stdout.write(`${w('id', 4)} ${w('client', 9)} ${w('station', 15)} ${w('action', 19)} ${w('expected', 9)} ${w('observed', 9)}\n`);
    for (const r of results) {
      process.stdout.write(`${w(r.row.id, 4)} ${w(r.row.client, 9)} ${w(r.row.station, 15)} ${w(r.row.action, 19)} ${w(r.row.expect, 9)} ${w(String(r.observed), 9)} ${r.ok ? 'ok' : 'MISMATCH'}  ${r.detail}\n`);
    }
    process.stdout.write(`${results.length - bad.length}/${results.length} rows as expected${bad.length ? `; mismatches: ${bad.map((b) => `${b.row.id} (line ${b.row.line}: expected ${b.row.expect}, observed ${b.observed})`).join(', ')}` : ''}\n`);
  }
  if (bad.length) process.exitCode = EXIT.FAILED;
}

/**
 * Write an exported key file: 0600, also over an existing file of a wider mode (a new file renamed over it:
 * lib/secret-file.ts); a path that cannot be written is a usage error naming it.
 */
function writeKeyFile(option: string, path: string, text: string): void {
  try {
    writeSecretFile(path, text);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'its directory does not exist' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw new UsageError('E_USAGE', `cannot write ${option} ${path}: ${why}`);
  }
}

/** serve's --sharing (DaemonTimes.sharing; docs/STATION.md "Station cluster"). */
function sharingOf(v: string | undefined): 'balanced' | 'first-come' {
  if (v === undefined || v === 'balanced' || v === 'first-come') return v ?? 'balanced';
  throw new UsageError('E_USAGE', `--sharing takes balanced or first-come, not ${JSON.stringify(v)}`);
}
