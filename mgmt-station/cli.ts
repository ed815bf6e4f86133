/**
 * mgmt-station: the management station's command line. `mgmt-station --help` lists the verbs;
 * README "CLI reference" documents them with their exit codes.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeSecretFile } from '../lib/secret-file.js';
import http from 'node:http';
import { DEFAULT_CONTROL as DEFAULT_DAEMON_CONTROL, StationDaemon, announceFile, announcedStore, validateLifetime } from './daemon.js';
import { parseTable } from './replay/table.js';
import { replayTable } from './replay/runner.js';
import { createLogger, type LogFormat } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { StationContext, DEFAULT_STORE, DEFAULT_KEY_FILE, emulatorControl } from './context.js';
import { ControlClient, DEFAULT_CONTROL, controlTimeoutMs } from '../lib/control-client.js';
import { EXIT, exitQuietlyOnEpipe, fail, fmtCounts, intOption, parseHostPort, printJson, progress, requireLoopback } from '../lib/cli.js';
import { parseCommandLine } from '../lib/cli-args.js';
import { runFleet, type Skipped } from '../lib/fleet-run.js';
import { isFleetTarget, needsLookup, resolveTargets, type KnownNic } from '../lib/nic-targets.js';
import { STATION_CLI } from './cli-spec.js';
import { DEFAULT_ANSWER_POLL_US } from '../lib/answer-poll.js';
import { MAX_BUSY_POLL_US } from '../lib/poll-loop.js';
import { LifelineError, UsageError, type ErrorCode } from '../common/errors.js';
import { saToJson } from '../lib/sa-json.js';
import { espSaUatLines } from './wireshark-keys.js';
import { ikev2DecryptionTableLine } from '../protocol/index.js';
import type { EspTransform, SaPair, SecurityPolicy } from '../wire/sa.js';
import type { CommandKind, ReadKind, RequestResult } from './core/session.js';
import { asfTypeName, ASF_TYPE_CODE } from '../wire/asf.js';
import { eventsVerb } from './events-verb.js';

const PROG = 'mgmt-station';

const READS: Record<string, ReadKind> = { ping: 'presence-ping', state: 'system-state-request', capabilities: 'capabilities-request' };
const COMMANDS: readonly CommandKind[] = ['reset', 'power-up', 'power-down', 'power-cycle'];
const isCommand = (verb: string): boolean => (COMMANDS as readonly string[]).includes(verb);

/** The verbs whose TARGET names NICs (lib/nic-targets.ts): one by id or address, a list, a pattern or all. */
const NIC_VERBS = new Set([...Object.keys(READS), ...COMMANDS, 'enroll', 'refresh', 'sa', 'log', 'audit']);

const SYSTEM_STATE_NAMES: Record<number, string> = {
  0: 'S0 working', 1: 'S1 sleeping', 2: 'S2 sleeping', 3: 'S3 sleeping (suspend to RAM)', 4: 'S4 suspend to disk',
  5: 'S5 soft-off', 6: 'S4/S5 soft-off', 7: 'G3 mechanical off', 8: 'sleeping S1-S3', 9: 'G1 sleeping',
  10: 'S5 override', 11: 'legacy on', 12: 'legacy off', 14: 'unknown',
};

async function main(argv: string[]): Promise<void> {
  const cl = parseCommandLine(STATION_CLI, argv);
  if (cl.kind !== 'run') {
    process.stdout.write(cl.text + '\n');
    process.exit(cl.kind === 'help' ? cl.exitCode : EXIT.OK);
  }
  const { verb, positionals } = cl;
  const values = cl.values as Record<string, string | boolean | undefined>;
  const json = values.json === true;
  // Each verb takes a fixed number of positionals, checked before anything is opened: a missing one or an extra
  // one (e.g. 'state nic-1 nic-2') is a usage error, whatever the state of the store.
  const verbArgs = VERB_ARGS[verb];
  const words = verbArgs.split(' ').filter(Boolean);
  const arity = words.length + 1; // '[NIC]': optional
  const required = words.filter((w) => !w.startsWith('[')).length + 1;
  if (positionals.length > arity) throw new UsageError('E_USAGE', `${verb} takes ${arity - 1 || 'no'} argument${arity === 2 ? '' : 's'}; unexpected '${positionals.slice(arity).join(' ')}'; run 'mgmt-station ${verb} --help'`);
  if (positionals.length < required || (verb === 'sa' && positionals[1] !== 'manual')) throw new UsageError('E_USAGE', `usage: mgmt-station ${verb} ${verbArgs}`);
  const target = verb === 'sa' ? positionals[2] : NIC_VERBS.has(verb) ? positionals[1] : undefined;
  const num = (v: string | undefined, def: number, name: string) => intOption(v, def, name, 1);
  const timeoutMs = num(values.timeout as string | undefined, 3000, 'timeout');
  const storeUrl = (values.store as string | undefined) ?? process.env.LIFELINE_STORE ?? DEFAULT_STORE;
  const stationId = (values.id as string | undefined) ?? 'station-1';
  const announce = announceFile(storeUrl, stationId);
  const runningDaemon = (file: string) => announcedDaemon(file, announcedStore(storeUrl));
  // A verb the daemon runs gets the CLI's --timeout, else the one the daemon was started with.
  const daemonTimeoutMs = (d: Announced) => (values.timeout !== undefined ? timeoutMs : d.timeoutMs ?? timeoutMs);
  // Verbs go through this station's daemon when it runs (one process holds the sequence state).
  if (!values['no-daemon'] && target !== undefined && (READS[verb] || isCommand(verb) || verb === 'refresh')) {
    const d = runningDaemon(announce);
    if (d && (await forwardVerb(d, verb, target, json, daemonTimeoutMs(d)))) return;
  }
  // The verbs that change a NIC's SA or PSK go through the daemon too (enroll, sa manual; refresh above): run
  // here, they would leave the daemon's session and key exchange on an SA and PSK the NIC retired.
  if (!values['no-daemon'] && target !== undefined && (verb === 'enroll' || verb === 'sa')) {
    const d = runningDaemon(announce);
    // As the verbs above: the CLI waits for it that long (at least what the key exchange gets) plus a margin.
    if (d && (await forwardKeying(d, verb, target, values, json, daemonTimeoutMs(d)))) return;
  }
  if (verb === 'replay') return replay(positionals[1]!, json);
  if (verb === 'status') {
    // The daemon's view: leases it polls, host states, refreshes, and what it dropped (by reason).
    const d = runningDaemon(announce);
    if (!d) throw new LifelineError('E_UNREACHABLE', `no daemon of station '${stationId}' is running for this store; start one with 'mgmt-station serve'`);
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
    return;
  }
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
    // Per NIC and reason at most 5 lines per 10 s, the rest summarised (lib/log-limit.ts).
    const log = createLogger({ format: logFormat as LogFormat, component: PROG, limit: new LogLimiter() });
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
      for (const id of resolveTargets(target!, known)) {
        const owner = await ctx.ownerElsewhere(id);
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
        await runFleet({ prog: PROG, verb, ids, one: async (nic) => requestJson(await run(nic)), line: (_n, r) => describe(r), json, skipped });
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
          await runFleet({ prog: PROG, verb: 'sa manual', ids, one: (nic) => ctx.installManualSa(emulatorControl(emu!), nic, manualSaOf(values)), line: (_n, r) => describeManualSa(r), json });
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
          await runFleet({ prog: PROG, verb, ids: fleet.ids, one: async (nic) => exchangeJson(await exchange(nic)), json, skipped: fleet.skipped });
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

/** A read's or command's result as --json prints it (round-trip time to the µs). */
function requestJson(r: RequestResult): RequestResult {
  return { ...r, rttMs: Math.round(r.rttMs * 1000) / 1000 };
}

/** An enrolment's or refresh's result as --json prints it. */
function exchangeJson<T extends { ms: number }>(r: T): T {
  return { ...r, ms: Math.round(r.ms * 1000) / 1000 };
}

/** The emulator's NICs (for enroll and sa manual on a fleet: NICs the store may not know yet). */
async function emulatorNics(emu: ControlClient): Promise<KnownNic[]> {
  return (await emu.get<{ id: string; address: string; ports?: { clear: number; secure: number; ike: number } }[]>('/v1/nics')).map((n) => ({
    id: n.id, address: n.address, ports: n.ports ? [n.ports.clear, n.ports.secure, n.ports.ike] : [],
  }));
}

/** E_NOT_FOUND for a NIC this station's store does not know (as a secure verb says it). */
async function requireNic(ctx: StationContext, nic: string): Promise<void> {
  if (!(await ctx.store.getNic(nic))) throw new LifelineError('E_NOT_FOUND', `NIC '${nic}' is not known to this station; 'mgmt-station list' shows the NICs it knows`);
}

function describe(r: RequestResult): string {
  const ms = r.rttMs.toFixed(2);
  const m = r.response;
  const base = `${r.nic}: SA ${r.generation}, ${ms} ms${r.attempts > 1 ? `, ${r.attempts} attempts` : ''}`;
  switch (m.type) {
    case 'presence-pong':
      return `pong from ${base}: entities 0x${m.supportedEntities.toString(16)} interactions 0x${m.supportedInteractions.toString(16)}`;
    case 'system-state-response':
      return `${r.nic}: system state ${m.systemState} (${SYSTEM_STATE_NAMES[m.systemState] ?? 'reserved'}), watchdog ${m.watchdogExpired ? 'expired' : 'ok'} (${base})`;
    case 'capabilities-response':
      return `${r.nic}: capabilities special 0x${m.specialCommands.toString(16)} system 0x${m.systemCapabilities.toString(16).padStart(2, '0')} firmware 0x${m.firmwareCapabilities.toString(16)} (${base})`;
    case 'rmcp-ack':
      return `${r.request} acknowledged by ${base} (log entry ${r.command?.index}, rmcp seq ${r.command?.rmcpSeq}, tag ${r.command?.tag})`;
    default:
      return `${r.nic}: ${asfTypeName(ASF_TYPE_CODE[m.type])} (${base})`;
  }
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
    EACCES: `binding this port needs root or cap_net_bind_service (README "Running without root"); use a port above 1023`,
  };
  const code = (e as NodeJS.ErrnoException)?.code;
  return code && why[code] ? new UsageError('E_USAGE', `${option} ${address}: ${why[code]} (${code})`) : e;
}

/**
 * What a running daemon wrote in its announce file (daemon.ts start()); `timeoutMs` is its --timeout, `token` the
 * credential its control API wants (the file is 0600: only its user reads it).
 */
interface Announced { pid: number; control: string; store?: string; timeoutMs?: number; token?: string }

/** The daemon announced in `file`, if its process is alive and it serves `store` (announcedStore). */
function announcedDaemon(file: string, store: string): Announced | null {
  try {
    const d = JSON.parse(readFileSync(file, 'utf8')) as Announced;
    if (d.store !== store) return null; // another store's daemon (or a file from an older version): not ours
    process.kill(d.pid, 0); // throws if the process is gone (a killed daemon leaves its file behind)
    return d;
  } catch {
    return null;
  }
}

/** The positional arguments of each verb, as its usage line shows them (their count is the verb's arity). */
const VERB_ARGS: Record<string, string> = {
  ping: 'TARGET', state: 'TARGET', capabilities: 'TARGET', reset: 'TARGET', 'power-up': 'TARGET', 'power-down': 'TARGET', 'power-cycle': 'TARGET',
  sa: 'manual TARGET', enroll: 'TARGET', refresh: 'TARGET', replay: 'TABLE', log: 'TARGET', audit: 'TARGET',
  list: '', keys: '', status: '', serve: '', events: '[NIC]',
};

/** How much longer than the verb's own timeout the CLI waits for the daemon's answer (lease, store, queueing). */
const DAEMON_ANSWER_MARGIN_MS = 5000;

/**
 * One daemon per station id and store: a second one would take over the announce file (the CLI would forward to
 * it alone) and, on stopping, remove it while the first still runs. A file left by a dead daemon (its pid gone,
 * or nothing listening at its address) does not count.
 */
async function refuseSecondDaemon(announce: string, stationId: string, runningDaemon: (file: string) => Announced | null): Promise<void> {
  const d = runningDaemon(announce);
  if (!d) return;
  const st = await daemonJson(d, 'GET', '/v1/status', 3000).catch((e: unknown) => {
    if (e instanceof DaemonRequestFailed && !e.sent) return null; // nothing listens there: a stale file
    throw new LifelineError('E_RUNNING', `a daemon of station '${stationId}' (pid ${d.pid}, ${announce}) takes connections at ${d.control} but did not answer (${(e as Error).message}); stop it (kill ${d.pid}) before starting another`);
  });
  if (st) throw new LifelineError('E_RUNNING', `station '${stationId}' already has a daemon on this store: pid ${d.pid} at http://${d.control}; stop it first (kill ${d.pid}) or use another --id`);
}

/** One line for an enrolment or a refresh (an ExchangeResult, or its JSON from the daemon). */
function describeExchange(r: { nic: string; kind: string; generation: number; exchange: string; ms: number }): string {
  return `${r.nic}: ${r.kind === 'enroll' ? 'enrolled' : 'refreshed'}: SA generation ${r.generation} committed (${r.exchange} + SA_READY/SA_ACK/SA_CONFIRM, ${Number(r.ms).toFixed(1)} ms)`;
}

function describeManualSa(r: { nic: string; generation: number; transform: string; policy: string; toNicSpi: number; fromNicSpi: number }): string {
  return `${r.nic}: manual SA generation ${r.generation} installed (${r.transform}, ${r.policy}, SPI to NIC 0x${r.toNicSpi.toString(16)}, from NIC 0x${r.fromNicSpi.toString(16)})`;
}

/**
 * A request to this station's daemon that got no JSON answer. `sent`: the connection was made, so the daemon
 * may have received the request and acted on it; when false (refused), the daemon was not there at all.
 */
class DaemonRequestFailed extends Error {
  constructor(readonly sent: boolean, readonly timedOut: boolean, readonly timeoutMs: number, readonly detail: string) {
    super(detail);
  }
}

/**
 * One JSON request to this station's daemon (mgmt-station/daemon.ts). Resolves with the body, error answers
 * included ({ ok: false, error }); `body` goes as JSON. Rejects with DaemonRequestFailed: `sent` false when the connection was
 * refused (no daemon listens: a verb may then run here instead); `sent` true when the daemon took the
 * connection and then reset it, hung up, answered non-JSON or did not answer within `timeoutMs` (the verb may
 * have run there: it must not run again here).
 */
function daemonJson(d: Pick<Announced, 'control' | 'token'>, method: 'GET' | 'POST', path: string, timeoutMs: number, body?: object): Promise<any> {
  const [host, port] = d.control.split(':');
  const data = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string | number> = data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) };
  if (d.token) headers.authorization = `Bearer ${d.token}`;
  return new Promise((resolve, reject) => {
    let sent = false;
    let timedOut = false;
    const req = http.request({ host, port: Number(port), method, path, headers, timeout: timeoutMs, agent: false }, (res) => {
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
 * daemon's list), or a fleet, each NIC a request, a few at a time, with the NICs another live station owns skipped
 * (and a refresh's NICs not enrolled left out). Resolves false when no daemon listens (nothing was sent: the verb
 * then runs here); a daemon that took a request and was lost is an error, not a second run.
 */
async function forwardVerb(d: Announced, verb: string, target: string, json: boolean, timeoutMs: number): Promise<boolean> {
  // The daemon answers within this timeout for reads and commands, at least 5 s for a refresh (as it would
  // itself), and the CLI waits that long plus a margin.
  const waitMs = (verb === 'refresh' ? Math.max(timeoutMs, 5000) : timeoutMs) + DAEMON_ANSWER_MARGIN_MS;
  const post = (nic: string) =>
    daemonJson(d, 'POST', `/v1/nics/${encodeURIComponent(nic)}/${verb}?timeout=${timeoutMs}`, waitMs).catch((e: unknown) => {
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
      await runFleet({
        // A line per NIC for reads and commands; a refresh says only the summary, as without a daemon.
        prog: PROG, verb, ids: ids.filter((id) => !owner.get(id)), json, skipped, viaDaemon: true, line: verb === 'refresh' ? undefined : (_n, r) => text(r),
        one: (id) => daemonResult(post(id)),
      });
      return true;
    }
    nic = resolveTargets(target, known)[0];
  }
  const r = await post(nic);
  if (r === null) return false;
  if (!r.ok) throw new LifelineError(r.error.code, r.error.message);
  if (json) printJson(r);
  else process.stdout.write(`${text(r)} [via daemon]\n`);
  return true;
}

/**
 * Run enroll or sa manual in this station's running daemon (README "CLI reference"): a fleet's NICs are listed
 * here (the emulator's: the store may not know them yet) and the daemon runs each, a few at a time, with progress
 * on a TTY. The PSK file is read and each manual SA made here, and sent to the daemon on loopback. Resolves false
 * when no daemon listens (nothing was sent: the verb then runs here); a daemon that took a request and was lost is
 * an error, not a second run.
 */
async function forwardKeying(d: Announced, verb: 'enroll' | 'sa', target: string, values: Record<string, string | boolean | undefined>, json: boolean, timeoutMs: number): Promise<boolean> {
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
  // Refused (no daemon listens): null, the verb runs here. Taken and then lost: it may have run there; not again here.
  const post = (nic: string) =>
    daemonJson(d, 'POST', `/v1/nics/${encodeURIComponent(nic)}/${daemonVerb}?timeout=${timeoutMs}`, waitMs, body()).catch((e: unknown) => {
      if (e instanceof DaemonRequestFailed && !e.sent) return null;
      throw e instanceof DaemonRequestFailed ? lostVerb(e, daemon, verb === 'sa' ? 'sa manual' : verb, nic) : e;
    });
  const text = (r: any) => (verb === 'sa' ? describeManualSa(r) : describeExchange(r));
  if (!isFleetTarget(target)) {
    // An address is the emulator's to resolve, as for a NIC the store does not know yet.
    const r = await post(target);
    if (r === null) return false;
    if (!r.ok) throw new LifelineError(r.error.code, r.error.message);
    if (json) printJson(r);
    else process.stdout.write(`${text(r)} [via daemon]\n`);
    return true;
  }
  // Is the daemon there at all? (A refused listing: the verb runs here.)
  if ((await daemonNics(d)) === null) return false;
  const ids = resolveTargets(target, await emulatorNics(ControlClient.parse(emulator, '--emulator', controlTimeoutMs(timeoutMs))));
  await runFleet({
    prog: PROG, verb: verb === 'sa' ? 'sa manual' : verb, ids, json, viaDaemon: true,
    line: verb === 'sa' ? (_n, r) => text(r) : undefined,
    one: (id) => daemonResult(post(id)),
  });
  return true;
}

/** One NIC's answer from the daemon in a fleet run: its result, or its error as thrown (gone: E_UNREACHABLE). */
async function daemonResult<R extends { ok: boolean; error?: { code: string; message: string } }>(answer: Promise<R | null>): Promise<Omit<R, 'ok'>> {
  const r = await answer;
  if (r === null) throw new LifelineError('E_UNREACHABLE', 'the station daemon went away');
  if (!r.ok) throw new LifelineError(r.error!.code as ErrorCode, r.error!.message);
  const { ok: _ok, ...rest } = r;
  return rest;
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

function readPsk(path: string): Uint8Array {
  if (!path) throw new UsageError('E_USAGE', 'enroll needs --psk-file FILE (64 hex digits; make one with: head -c 32 /dev/urandom | xxd -p -c 64 > psk.hex)');
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new UsageError('E_USAGE', `cannot read --psk-file ${path}: ${(e as Error).message}`);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new UsageError('E_USAGE', `--psk-file ${path} must hold 64 hex digits (32 bytes); make one with: head -c 32 /dev/urandom | xxd -p -c 64`);
  return new Uint8Array(Buffer.from(text, 'hex'));
}

/** The manual SA that `sa manual` options ask for (--policy, --transform, --key-bits); E_USAGE for a bad one. */
function manualSaOf(values: Record<string, string | boolean | undefined>): SaPair {
  const keyBits = intOption(values['key-bits'] as string | undefined, 128, 'key-bits', 1);
  return manualSa((values.policy ?? 'esp') as SecurityPolicy, (values.transform ?? 'aes-gcm-16') as EspTransform, keyBits);
}

function manualSa(policy: SecurityPolicy, transform: EspTransform, keyBits: number): SaPair {
  if (policy !== 'esp' && policy !== 'esp+ah') throw new UsageError('E_USAGE', `--policy must be esp or esp+ah`);
  if (transform !== 'aes-gcm-16' && transform !== 'chacha20-poly1305') throw new UsageError('E_USAGE', `--transform must be aes-gcm-16 or chacha20-poly1305`);
  if (transform === 'aes-gcm-16' && keyBits !== 128 && keyBits !== 256) throw new UsageError('E_USAGE', `--key-bits must be 128 or 256`);
  const keyLen = transform === 'aes-gcm-16' ? keyBits / 8 + 4 : 36;
  const spi = () => randomInt(0x1000, 0xfffffffe);
  const dir = () => ({
    spi: spi(),
    encKey: new Uint8Array(randomBytes(keyLen)),
    ahSpi: policy === 'esp+ah' ? spi() : 0,
    ahKey: policy === 'esp+ah' ? new Uint8Array(randomBytes(32)) : new Uint8Array(0),
  });
  return { generation: 0, transform, esn: false, policy, origin: 'manual', toNic: dir(), fromNic: dir() };
}

exitQuietlyOnEpipe();
main(process.argv.slice(2)).catch((e) => fail(PROG, e instanceof LifelineError ? e : e, process.argv.includes('--json')));
