/**
 * mgmt-station: the management station's command line. `mgmt-station --help` lists the verbs;
 * README "CLI reference" documents them with their exit codes.
 */
import { parseArgs } from 'node:util';
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeSecretFile } from '../lib/secret-file.js';
import http from 'node:http';
import { StationDaemon, announceFile, announcedStore, validateLifetime } from './daemon.js';
import { parseTable } from './replay/table.js';
import { replayTable } from './replay/runner.js';
import { createLogger, type LogFormat } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { StationContext, DEFAULT_STORE, DEFAULT_KEY_FILE, emulatorControl } from './context.js';
import { ControlClient, DEFAULT_CONTROL, controlTimeoutMs } from '../lib/control-client.js';
import { EXIT, exitQuietlyOnEpipe, fail, intOption, parseHostPort, printJson, progress, requireLoopback } from '../lib/cli.js';
import { DEFAULT_ANSWER_POLL_US } from '../lib/answer-poll.js';
import { MAX_BUSY_POLL_US } from '../lib/poll-loop.js';
import { LifelineError, UsageError } from '../common/errors.js';
import { saToJson } from '../lib/sa-json.js';
import { espSaUatLines } from './wireshark-keys.js';
import { ikev2DecryptionTableLine } from '../protocol/index.js';
import type { EspTransform, SaPair, SecurityPolicy } from '../wire/sa.js';
import type { CommandKind, ReadKind, RequestResult } from './core/session.js';
import { asfTypeName, ASF_TYPE_CODE } from '../wire/asf.js';
import { eventsVerb } from './events-verb.js';

const PROG = 'mgmt-station';

const HELP = `Usage: mgmt-station <command> [options]

Secure commands (ESP on UDP 664, retransmitted on loss; one line on stdout, or JSON with --json):
  ping NIC                  ASF Presence Ping -> Pong
  state NIC                 ASF System State (the host's S-state)
  capabilities NIC          ASF Capabilities
  reset NIC | power-up NIC | power-down NIC | power-cycle NIC
                            ASF power commands; done = the NIC acknowledged it and the outcome is stored

Daemon:
  serve                     run the station daemon: keeps leases, polls NICs, refreshes SAs on its timer when the
                            host is up, and serves the verbs above (the CLI forwards to it when it runs)
      [--refresh-interval S] (default 3600)  [--max-down-time S] (default 86400)  [--lifetime S] (default: infinite)
      [--ike-rekey-interval S] (default 14400)  rekey a held IKE SA (RFC 7296 §2.18) at the first refresh after S
      [--poll-interval MS] (default 5000)  [--control HOST:PORT] (its control API; loopback only, default 127.0.0.1:0)
      [--listen ADDR:PORT]  the station's secure UDP socket: NIC heartbeats and owner notices name it
                            (use the address:port the NICs' cluster policy lists); default 127.0.0.1:any

Keys and NICs:
  sa manual NIC             manual keying (RFC 4301 §4.5): create an SA, install it in the NIC through the
                            emulator's control API, keep it in the store
      [--emulator HOST:PORT] [--policy esp|esp+ah] [--transform aes-gcm-16|chacha20-poly1305] [--key-bits 128|256]
  enroll NIC|all --psk-file F
                            write the pre-shared key F (64 hex digits) as the NIC's trust anchor, then negotiate
                            a child SA with the host agent (IKEv2, host must be up) and commit it (two-phase);
                            'all' = every NIC of the emulator, with a progress bar on a TTY
  refresh NIC|all           SA refresh: new child SA + ready/ack/confirm commit (host must be up)
  list [--json]             NICs this station knows, with their SAs
  keys --wireshark FILE [--ikev2 FILE]
                            write esp_sa (and ikev2_decryption_table) UAT lines for every SA in the store (the
                            newest 16 retired ones per NIC too); the files are 0600
                            (see README "Checking packets with tshark")
  log NIC [--json]          the NIC's command log with outcomes
  events [NIC] [--follow] [--json]
                            ASF alerts the NICs sent (host hang, boot, power, cable, security), as stored;
                            --follow streams new ones (NDJSON with --json); docs/ALERTS.md
  status [--json]           the running daemon's view: NICs it owns, host states, refreshes, drops by reason
  audit NIC [--json]        verify the NIC's hash-chained command log; names the first bad entry

Tables:
  replay TABLE [--json]     bring up an isolated lab, drive every row of a state-transition table (e.g.
                            fixtures/fig6.table), print expected vs observed; exit 1 on any mismatch

Common options:
  --store URL               sqlite:FILE (default ${DEFAULT_STORE}) or postgres://...; only enroll, sa manual
                            and serve create a missing SQLite store
  --cluster-key FILE        32-byte cluster key file, mode 0600 (default ${DEFAULT_KEY_FILE}; enroll, sa manual
                            and serve create it with a new store); or set LIFELINE_CLUSTER_KEY=<64 hex>
  --id NAME                 this station's id in the cluster (default station-1)
  --lease-ms MS             NIC ownership lease (default 10000)
  --timeout MS              answer timeout for secure commands (default 3000); the emulator control API
                            (enroll, sa manual) gets at least 5000
  --busy-poll-us US         after sending a request, poll for its answer up to US µs instead of sleeping
                            (default ${DEFAULT_ANSWER_POLL_US}; 0 = never: less CPU, slower answers; lib/answer-poll.ts)
  --emulator HOST:PORT      the emulator control API, for manual keying (default ${DEFAULT_CONTROL})
  --no-daemon               run a verb in this process even if a daemon of this station runs
  --json                    machine-readable output
  -h, --help                this help

Exit codes: 0 ok, 1 operation failed (timeout, refused), 2 usage error, 3 store/emulator unreachable, 4 internal.`;

const READS: Record<string, ReadKind> = { ping: 'presence-ping', state: 'system-state-request', capabilities: 'capabilities-request' };
const COMMANDS: readonly CommandKind[] = ['reset', 'power-up', 'power-down', 'power-cycle'];

const SYSTEM_STATE_NAMES: Record<number, string> = {
  0: 'S0 working', 1: 'S1 sleeping', 2: 'S2 sleeping', 3: 'S3 sleeping (suspend to RAM)', 4: 'S4 suspend to disk',
  5: 'S5 soft-off', 6: 'S4/S5 soft-off', 7: 'G3 mechanical off', 8: 'sleeping S1-S3', 9: 'G1 sleeping',
  10: 'S5 override', 11: 'legacy on', 12: 'legacy off', 14: 'unknown',
};

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      store: { type: 'string' },
      'cluster-key': { type: 'string' },
      id: { type: 'string' },
      'lease-ms': { type: 'string' },
      timeout: { type: 'string' },
      emulator: { type: 'string' },
      policy: { type: 'string' },
      transform: { type: 'string' },
      'key-bits': { type: 'string' },
      wireshark: { type: 'string' },
      ikev2: { type: 'string' },
      'psk-file': { type: 'string' },
      json: { type: 'boolean' },
      follow: { type: 'boolean' },
      'no-daemon': { type: 'boolean' },
      'refresh-interval': { type: 'string' },
      'ike-rekey-interval': { type: 'string' },
      'max-down-time': { type: 'string' },
      lifetime: { type: 'string' },
      'poll-interval': { type: 'string' },
      control: { type: 'string' },
      listen: { type: 'string' },
      'log-format': { type: 'string' },
      'busy-poll-us': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const verb = positionals[0];
  if (values.help || !verb || verb === 'help') {
    process.stdout.write(HELP + '\n');
    process.exit(verb || values.help ? EXIT.OK : EXIT.USAGE);
  }
  const json = values.json === true;
  // Each verb takes a fixed number of positionals, checked before anything is opened: a missing one or an extra
  // one (e.g. 'state nic-1 nic-2') is a usage error, whatever the state of the store.
  const verbArgs = VERB_ARGS[verb];
  if (verbArgs !== undefined) {
    const arity = verbArgs.split(' ').filter(Boolean).length + 1;
    if (positionals.length > arity) throw new UsageError('E_USAGE', `${verb} takes ${arity - 1 || 'no'} argument${arity === 2 ? '' : 's'}; unexpected '${positionals.slice(arity).join(' ')}'; run 'mgmt-station --help'`);
    if (positionals.length < arity || (verb === 'sa' && positionals[1] !== 'manual')) throw new UsageError('E_USAGE', `usage: mgmt-station ${verb} ${verbArgs}`);
  }
  const num = (v: string | undefined, def: number, name: string) => intOption(v, def, name, 1);
  const timeoutMs = num(values.timeout, 3000, 'timeout');
  const storeUrl = values.store ?? process.env.LIFELINE_STORE ?? DEFAULT_STORE;
  const stationId = values.id ?? 'station-1';
  const announce = announceFile(storeUrl, stationId);
  const runningDaemon = (file: string) => announcedDaemon(file, announcedStore(storeUrl));
  // A verb the daemon runs gets the CLI's --timeout, else the one the daemon was started with.
  const daemonTimeoutMs = (d: Announced) => (values.timeout !== undefined ? timeoutMs : d.timeoutMs ?? timeoutMs);
  // Verbs go through this station's daemon when it runs (one process holds the sequence state).
  if (!values['no-daemon'] && positionals[1] !== 'all' && (READS[verb] || (COMMANDS as readonly string[]).includes(verb) || verb === 'refresh')) {
    const d = runningDaemon(announce);
    if (d) {
      const nic = positionals[1]!; // present: checked against VERB_ARGS
      // The daemon answers within this timeout for reads and commands, at least 5 s for a refresh (as it would
      // itself), and the CLI waits that long plus a margin.
      const verbTimeoutMs = daemonTimeoutMs(d);
      const path = `/v1/nics/${encodeURIComponent(nic)}/${verb}?timeout=${verbTimeoutMs}`;
      const waitMs = (verb === 'refresh' ? Math.max(verbTimeoutMs, 5000) : verbTimeoutMs) + DAEMON_ANSWER_MARGIN_MS;
      const r = await daemonJson(d, 'POST', path, waitMs).catch((e: unknown) => {
        // The daemon was not there when we connected (a daemon killed with -9 leaves its file behind, and its
        // pid may have been reused): nothing was sent, so the verb runs here.
        if (e instanceof DaemonRequestFailed && !e.sent) return null;
        throw e instanceof DaemonRequestFailed ? lostVerb(e, d.control, verb, nic) : e;
      });
      if (r) {
        if (!r.ok) throw new LifelineError(r.error.code, r.error.message);
        if (json) printJson(r);
        else process.stdout.write((verb === 'refresh' ? describeExchange(r) : describe(r)) + ' [via daemon]\n');
        return;
      }
    }
  }
  // The verbs that change a NIC's SA or PSK go through the daemon too (enroll, refresh all, sa manual; `refresh
  // NIC` above): run here, they would leave the daemon's session and key exchange on an SA and PSK the NIC retired.
  if (!values['no-daemon'] && changesKeys(verb, positionals)) {
    const d = runningDaemon(announce);
    // As the verbs above: the CLI waits for it that long (at least what the key exchange gets) plus a margin.
    if (d && (await forwardKeying(d, verb, positionals, values, json, daemonTimeoutMs(d)))) return;
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
    process.stdout.write(`station ${st.id} (pid ${st.pid}); dropped on its socket: ${fmtCounts(st.socketDrops)}; heartbeats: ${fmtCounts(st.heartbeats)}\n`);
    for (const n of st.nics) process.stdout.write(`${String(n.id).padEnd(8)} host=${n.host} refreshes=${n.refreshes} dropped ${fmtCounts(n.dropped)}${n.lastError ? ' last error: ' + n.lastError : ''}\n`);
    return;
  }
  // Address options and the log format are checked before anything is opened or created.
  const listen = hostPortOption('--listen', values.listen ?? '127.0.0.1:0');
  const control = hostPortOption('--control', values.control ?? '127.0.0.1:0');
  requireLoopback('--control', values.control ?? '127.0.0.1:0', control.host); // the daemon's control API: loopback only
  const logFormat = values['log-format'] ?? 'text';
  if (logFormat !== 'text' && logFormat !== 'json') throw new UsageError('E_USAGE', `--log-format must be text or json, got '${logFormat}'`);
  const busyPollUs = intOption(values['busy-poll-us'], DEFAULT_ANSWER_POLL_US, 'busy-poll-us', 0, MAX_BUSY_POLL_US);
  if (verb === 'serve') await refuseSecondDaemon(announce, stationId, runningDaemon);
  // Bad options are usage errors found before anything is opened or created (the store, the cluster key): a bad
  // PSK file, manual SA options, the emulator's address, serve's intervals.
  const enrollPsk = verb === 'enroll' ? readPsk(values['psk-file'] ?? '') : null;
  // The emulator control API, for the verbs that use it (sa, enroll, refresh).
  const emu = verb === 'sa' || verb === 'enroll' || verb === 'refresh' ? ControlClient.parse(values.emulator ?? DEFAULT_CONTROL, '--emulator', controlTimeoutMs(timeoutMs)) : null;
  const leaseMs = num(values['lease-ms'], 10000, 'lease-ms');
  const manual = verb === 'sa' ? manualSaOf(values) : null;
  const serveTimes = verb === 'serve'
    ? {
        refreshIntervalS: num(values['refresh-interval'], 3600, 'refresh-interval'),
        maxDownTimeS: intOption(values['max-down-time'], 86400, 'max-down-time'),
        lifetimeS: values.lifetime !== undefined ? num(values.lifetime, 0, 'lifetime') : Infinity,
        pollIntervalMs: num(values['poll-interval'], 5000, 'poll-interval'),
      }
    : null;
  if (serveTimes) validateLifetime(serveTimes);
  const ikeRekeyS = verb === 'serve' ? num(values['ike-rekey-interval'], 14400, 'ike-rekey-interval') : undefined;
  const ctx = await StationContext.open({
    store: storeUrl,
    keyFile: values['cluster-key'] ?? DEFAULT_KEY_FILE,
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
      throw addressError(e, '--listen', values.listen ?? '127.0.0.1:0');
    });
    await daemon.start().catch((e: unknown) => {
      throw addressError(e, '--control', values.control ?? '127.0.0.1:0');
    });
    // `announce`: the file (0600) with the daemon's address and the credential its control API wants.
    const line = { ready: true, id: stationId, pid: process.pid, control: `${control.host}:${daemon.port}`, store: ctx.store.url, announce };
    process.stdout.write((json ? JSON.stringify(line) : `mgmt-station: station '${stationId}' serving on http://${line.control} (store ${line.store})`) + '\n');
    return;
  }
  try {
    if (READS[verb] || (COMMANDS as readonly string[]).includes(verb)) {
      const nic = positionals[1]!; // present: checked against VERB_ARGS
      const s = await ctx.session(nic);
      const r = READS[verb] ? await s.read(READS[verb], timeoutMs) : await s.command(verb as CommandKind, timeoutMs);
      if (json) printJson({ ok: true, ...r, rttMs: Math.round(r.rttMs * 1000) / 1000 });
      else process.stdout.write(describe(r) + '\n');
      return;
    }
    switch (verb) {
      case 'sa': {
        const r = await ctx.installManualSa(emulatorControl(emu!), positionals[2]!, manual!);
        if (json) printJson({ ok: true, ...r });
        else process.stdout.write(describeManualSa(r) + '\n');
        return;
      }
      case 'enroll':
      case 'refresh': {
        const target = positionals[1]!;
        const psk = enrollPsk;
        // `all`: every NIC of the emulator (enroll) or every enrolled NIC this station owns or can take (refresh:
        // a NIC whose lease another live station holds is that station's to refresh, and is skipped).
        const skipped: Skipped[] = [];
        let ids: string[] = [target];
        if (target === 'all' && verb === 'enroll') ids = (await emu!.get<{ id: string }[]>('/v1/nics')).map((n) => n.id);
        else if (target === 'all') {
          ids = [];
          for (const n of await ctx.store.listNics()) {
            if (n.meta.enrolled !== true) continue;
            const owner = await ctx.ownerElsewhere(n.id);
            if (owner) skipped.push({ nic: n.id, owner });
            else ids.push(n.id);
          }
        }
        // Key exchanges get at least 10 s for an enrolment and 5 s for a refresh, as in the daemon (daemon.ts).
        const kx = Math.max(timeoutMs, psk ? 10000 : 5000);
        const one = async (nicId: string) => {
          if (psk) return ctx.enroll(emulatorControl(emu!), nicId, psk, kx);
          const nic = await ctx.store.getNic(nicId);
          if (!nic) throw new LifelineError('E_NOT_FOUND', `NIC '${nicId}' is not enrolled; run 'mgmt-station enroll ${nicId} --psk-file FILE'`);
          return ctx.keyExchange(nic, 'refresh', kx);
        };
        if (target !== 'all') {
          const r = await one(target);
          if (json) printJson({ ok: true, ...r, ms: Math.round(r.ms * 1000) / 1000 });
          else process.stdout.write(describeExchange(r) + '\n');
          return;
        }
        await runFleet(verb, ids, one, json, false, skipped);
        return;
      }
      case 'audit': {
        const nic = positionals[1]!; // present: checked against VERB_ARGS
        await requireNic(ctx, nic);
        const rep = await ctx.store.auditCommandLog(nic);
        if (json) printJson(rep);
        else if (rep.ok) process.stdout.write(`${nic}: command log intact (${rep.entries} entries, head ${rep.head?.index ?? 0})\n`);
        else process.stdout.write(`${nic}: command log TAMPERED: first bad entry ${rep.firstBadIndex}: ${rep.problem}\n`);
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
          const sas = n.sas.map((s) => `${s.generation}:${s.state}`).join(' ') || 'none';
          process.stdout.write(`${n.id.padEnd(8)} ${n.address}:${n.ports.secure}  owner=${n.owner ?? '-'} epoch=${n.epoch}  SAs ${sas}\n`);
        }
        return;
      }
      case 'keys': {
        const file = values.wireshark;
        if (!file && !values.ikev2) throw new UsageError('E_USAGE', 'usage: mgmt-station keys --wireshark FILE [--ikev2 FILE]');
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
        if (values.ikev2) writeKeyFile('--ikev2', values.ikev2, ike.map((l) => l + '\n').join(''));
        if (json) printJson({ ok: true, file: file ?? null, sas: n, ikev2File: values.ikev2 ?? null, ikeSas: ike.length });
        else process.stdout.write(`wrote ${[file ? `${n} ESP SA(s) to ${file}` : '', values.ikev2 ? `${ike.length} IKE SA(s) to ${values.ikev2}` : ''].filter(Boolean).join(', ')}\n`);
        return;
      }
      case 'events': {
        // events [NIC] [--follow] [--json] (docs/ALERTS.md): from the store, so it needs no daemon.
        if (positionals.length > 2) throw new UsageError('E_USAGE', `usage: mgmt-station events [NIC] [--follow] [--json]`);
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
        const nic = positionals[1]!; // present: checked against VERB_ARGS
        await requireNic(ctx, nic);
        const cmds = await ctx.store.listCommands(nic);
        if (json) return printJson(cmds);
        for (const c of cmds) process.stdout.write(`${c.index} ${new Date(c.time).toISOString()} ${c.command} seq=${c.rmcpSeq} tag=${c.asfTag} ${c.outcome} by ${c.outcomeStation}@${c.outcomeEpoch}\n`);
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
      return `${r.request} acknowledged by ${base} (command #${r.command?.index}, rmcp seq ${r.command?.rmcpSeq}, tag ${r.command?.tag})`;
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
  ping: 'NIC', state: 'NIC', capabilities: 'NIC', reset: 'NIC', 'power-up': 'NIC', 'power-down': 'NIC', 'power-cycle': 'NIC',
  sa: 'manual NIC', enroll: 'NIC|all', refresh: 'NIC|all', replay: 'TABLE', log: 'NIC', audit: 'NIC',
  list: '', keys: '', status: '', serve: '',
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

/** A NIC `refresh all` leaves alone: another live station holds its lease. */
interface Skipped { nic: string; owner: string }

/**
 * `enroll|refresh all`: up to 8 NICs at a time, progress on a TTY, one line per failure (with its error code), a
 * summary naming the NICs skipped as another station's; exit 1 if any failed.
 */
async function runFleet(verb: string, ids: string[], one: (nic: string) => Promise<unknown>, json: boolean, viaDaemon: boolean, skipped: Skipped[] = []): Promise<void> {
  const bar = progress(`${verb} ${ids.length} NICs`);
  const queue = [...ids];
  const failed: { nic: string; code: string; error: string }[] = [];
  let done = 0;
  const t0 = performance.now();
  const worker = async () => {
    for (let id = queue.shift(); id; id = queue.shift()) {
      await one(id).catch((e) => failed.push({ nic: id!, code: e instanceof LifelineError ? e.code : 'E_INTERNAL', error: (e as Error).message }));
      bar.update(++done, ids.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, ids.length) }, worker));
  bar.done();
  const secs = (performance.now() - t0) / 1000;
  if (json) printJson({ ok: failed.length === 0, nics: ids.length, failed, skipped, seconds: Math.round(secs * 1000) / 1000, ...(viaDaemon ? { viaDaemon } : {}) });
  else {
    for (const f of failed) process.stderr.write(`${PROG}: ${f.nic}: ${f.code}: ${f.error}\n`);
    const owners = [...new Set(skipped.map((s) => s.owner))].map((o) => `'${o}'`).join(', ');
    const skip = skipped.length ? `, ${skipped.length} skipped (owned by station ${owners})` : '';
    process.stdout.write(`${verb}: ${ids.length - failed.length}/${ids.length} NICs in ${secs.toFixed(1)} s${failed.length ? `, ${failed.length} failed` : ''}${skip}${viaDaemon ? ' [via daemon]' : ''}\n`);
  }
  if (failed.length) process.exitCode = EXIT.FAILED;
}

/** One line for an enrolment or a refresh (an ExchangeResult, or its JSON from the daemon). */
function describeExchange(r: { nic: string; kind: string; generation: number; exchange: string; ms: number }): string {
  return `${r.nic}: ${r.kind === 'enroll' ? 'enrolled' : 'refreshed'}: SA generation ${r.generation} committed (${r.exchange} + SA_READY/SA_ACK/SA_CONFIRM, ${Number(r.ms).toFixed(1)} ms)`;
}

function describeManualSa(r: { nic: string; generation: number; transform: string; policy: string; toNicSpi: number; fromNicSpi: number }): string {
  return `${r.nic}: manual SA generation ${r.generation} installed (${r.transform}, ${r.policy}, SPI to NIC 0x${r.toNicSpi.toString(16)}, from NIC 0x${r.fromNicSpi.toString(16)})`;
}

function fmtCounts(c: Record<string, number>): string {
  return Object.entries(c).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(',') || 'none';
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

/** enroll NIC|all, refresh all, sa manual NIC: the verbs that change SAs or PSKs and that forwardKeying sends. */
function changesKeys(verb: string, positionals: string[]): boolean {
  return (verb === 'enroll' && !!positionals[1]) || (verb === 'refresh' && positionals[1] === 'all') || (verb === 'sa' && positionals[1] === 'manual' && !!positionals[2]);
}

/**
 * Run enroll NIC|all, refresh all or sa manual NIC in this station's running daemon (README "CLI reference"):
 * `all` lists the NICs here (the emulator's for enroll, the store's enrolled ones for refresh, from the daemon)
 * and has the daemon run each, a few at a time, with progress on a TTY. The PSK file is read and the manual SA
 * made here, and sent to the daemon on loopback. Resolves false when no daemon listens at `daemon` (nothing was
 * sent: the verb then runs here); a daemon that took a request and was lost is an error, not a second run.
 */
async function forwardKeying(d: Announced, verb: string, positionals: string[], values: Record<string, string | boolean | undefined>, json: boolean, timeoutMs: number): Promise<boolean> {
  const daemon = d.control;
  const emulator = String(values.emulator ?? DEFAULT_CONTROL);
  const target = verb === 'sa' ? positionals[2] : positionals[1];
  const daemonVerb = verb === 'sa' ? 'sa-manual' : verb;
  const body = verb === 'enroll'
    ? { psk: Buffer.from(readPsk(String(values['psk-file'] ?? ''))).toString('hex'), emulator }
    : verb === 'sa'
      ? { emulator, sa: saToJson(manualSaOf(values)) }
      : {};
  // The daemon gets `timeoutMs` (?timeout=) and gives a key exchange at least what the local path gives it
  // (enroll 10 s, refresh 5 s as `refresh NIC` through the daemon, sa manual 5 s for the emulator's control API);
  // the CLI waits that long plus DAEMON_ANSWER_MARGIN_MS per request.
  const waitMs = Math.max(timeoutMs, verb === 'enroll' ? 10000 : 5000) + DAEMON_ANSWER_MARGIN_MS;
  // Refused (no daemon listens): null, the verb runs here. Taken and then lost: it may have run there; not again here.
  const post = (nic: string) =>
    daemonJson(d, 'POST', `/v1/nics/${encodeURIComponent(nic)}/${daemonVerb}?timeout=${timeoutMs}`, waitMs, body).catch((e: unknown) => {
      if (e instanceof DaemonRequestFailed && !e.sent) return null;
      throw e instanceof DaemonRequestFailed ? lostVerb(e, daemon, verb === 'sa' ? 'sa manual' : verb, nic) : e;
    });
  if (target !== 'all') {
    const r = await post(target);
    if (r === null) return false;
    if (!r.ok) throw new LifelineError(r.error.code, r.error.message);
    if (json) printJson(r);
    else if (verb === 'sa') process.stdout.write(`${describeManualSa(r)} [via daemon]\n`);
    else process.stdout.write(`${describeExchange(r)} [via daemon]\n`);
    return true;
  }
  // The listing changes nothing: a daemon lost while answering it has run nothing, and the verb may be retried.
  const known = await daemonJson(d, 'GET', '/v1/nics', 10000).catch((e: unknown) => {
    if (!(e instanceof DaemonRequestFailed)) throw e;
    if (!e.sent) return null;
    throw new LifelineError(e.timedOut ? 'E_TIMEOUT' : 'E_UNREACHABLE', `the station daemon at ${daemon} did not list its NICs (${e.detail}); nothing was run: retry`);
  });
  if (known === null) return false;
  // refresh all: the enrolled NICs the daemon's station owns or can take (see the local path).
  const listed = known.nics as { id: string; enrolled: boolean; ownedBy?: string | null }[];
  const skipped: Skipped[] = verb === 'enroll' ? [] : listed.filter((n) => n.enrolled && n.ownedBy).map((n) => ({ nic: n.id, owner: n.ownedBy! }));
  const ids: string[] = verb === 'enroll'
    ? (await ControlClient.parse(emulator, '--emulator', controlTimeoutMs(timeoutMs)).get<{ id: string }[]>('/v1/nics')).map((n) => n.id)
    : listed.filter((n) => n.enrolled && !n.ownedBy).map((n) => n.id);
  await runFleet(verb, ids, async (id) => {
    const r = await post(id);
    if (r === null) throw new LifelineError('E_UNREACHABLE', 'the station daemon went away');
    if (!r.ok) throw new LifelineError(r.error.code, r.error.message);
  }, json, true, skipped);
  return true;
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
