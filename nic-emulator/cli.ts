/**
 * nic-emulator: hosts a fleet of emulated management NICs and their hosts.
 * Run `nic-emulator --help` for the verbs; README "CLI reference" documents them with exit codes.
 */
import { parseArgs } from 'node:util';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { BusyPoll, DEFAULT_BUSY_POLL_MAX_US } from './busy-poll.js';
import { batchUdpUnavailable, defaultUdpIo } from '../lib/batch-udp.js';
import { MAX_BUSY_POLL_US } from '../lib/poll-loop.js';
import { Fleet } from './fleet.js';
import { startControlServer } from './control-server.js';
import { ControlClient, DEFAULT_CONTROL } from '../lib/control-client.js';
import { createLogger, type LogFormat, type LogLevel } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { EXIT, exitQuietlyOnEpipe, fail, intOption, parseHostPort, printJson, progress, requireLoopback } from '../lib/cli.js';
import { UsageError } from '../common/errors.js';
import { CLEAR_COMMAND_BIT } from '../firmware/nic-firmware.js';
import { CLUSTER_POLICY_MAX } from '../firmware/eeprom-image.js';
import { HOST_STATES, type HostState, type AsfCommandEvent } from '../firmware/host-state.js';
import type { SecurityPolicy } from '../wire/sa.js';

const PROG = 'nic-emulator';
const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];
const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

const HELP = `Usage: nic-emulator <command> [options]

Commands:
  start                     host a fleet of NICs (stays in the foreground; Ctrl-C or 'stop' ends it)
  status [NIC] [--json]     host state, SA generations, packet counters and EEPROM writes of every NIC (or one)
  host NIC EVENT [--json]   drive a host: hang suspend wake crash power-loss power-restore cable-pull cable-plug
                            reset power-up power-down power-cycle
  exec-log NIC [--json]     commands the NIC executed (clear and secure), oldest first
  fault NIC tear-next-write BYTE   the NIC loses power once BYTE more bytes are written to its EEPROM: the
                            write crossing that point is torn, writes that fit before it complete
  policy NIC FILE           write a station-cluster policy (seed INI: [GENERAL] Heartbeat=..., [CLUSTER]
                            Cluster1 = addr:port ...) into the NIC's EEPROM; heartbeats start per it
  stop                      stop a running emulator

Options for start:
  --nics N                  number of NICs (default 4)
  --first-address A         address of the first NIC, one loopback address per NIC (default 127.0.1.1),
                            ports 623 (clear), 664 (secure), 500 (IKE); needs root or cap_net_bind_service
  --port-base P             port-per-NIC instead: all NICs on --first-address (default then 127.0.0.1),
                            NIC i uses P+3(i-1) clear, +1 secure, +2 IKE; no privileges needed
  --data-dir D              one EEPROM file per NIC under D (default ./var/nics)
  --boot-delay MS           pre-boot -> OS up delay (default 2000)
  --host-state S            host state of every NIC at start: ${HOST_STATES.join('|')} (default up)
  --policy esp|esp+ah       security policy written into new EEPROM images (default esp)
  --clear-management CMDS   new images allow these clear commands on 623, comma-separated
                            (reset,power-up,power-down,power-cycle); default: none (refused)
  --checkpoint-block K      sequence numbers reserved per EEPROM checkpoint, 4096..65536 (default 16384)
  --busy-poll-us US         after a datagram, poll the sockets for up to US µs instead of sleeping, adapting
                            to the traffic (default ${DEFAULT_BUSY_POLL_MAX_US}; 0 = never poll: less CPU while datagrams come less
                            than US µs apart, slower answers; nic-emulator/busy-poll.ts)
  --udp-io batch|dgram      how the NICs' 623/664 sockets move datagrams: batch = recvmmsg/sendmmsg (lib/native,
                            built by npm ci; the default where it is built), dgram = node:dgram (the fallback)

Common options:
  --control HOST:PORT       control API address (default ${DEFAULT_CONTROL}; loopback only)
  --json                    machine-readable output
  --log-format text|json    log lines on stderr (default text); per NIC and reason at most 5 per 10 s, then one
                            line saying how many more were left out (the counters keep the detail)
  --log-level L             least important log line shown: debug|info|warn|error (default info)
  -h, --help                this help

Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 emulator unreachable, 4 internal error.`;

/** How many positional words each verb takes, the verb included: more is a usage error, not silently ignored. */
const MAX_POSITIONALS: Record<string, number> = { start: 1, status: 2, host: 3, 'exec-log': 2, fault: 4, policy: 3, stop: 1 };

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      nics: { type: 'string' },
      'first-address': { type: 'string' },
      'port-base': { type: 'string' },
      'data-dir': { type: 'string' },
      'boot-delay': { type: 'string' },
      'host-state': { type: 'string' },
      policy: { type: 'string' },
      'clear-management': { type: 'string' },
      'checkpoint-block': { type: 'string' },
      'busy-poll-us': { type: 'string' },
      'udp-io': { type: 'string' },
      control: { type: 'string' },
      json: { type: 'boolean' },
      'log-format': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const verb = positionals[0];
  if (values.help || !verb || verb === 'help') {
    process.stdout.write(HELP + '\n');
    process.exit(verb || values.help ? EXIT.OK : EXIT.USAGE);
  }
  const most = MAX_POSITIONALS[verb];
  if (most !== undefined && positionals.length > most) {
    throw new UsageError('E_USAGE', `unexpected argument '${positionals[most]}' after '${positionals.slice(0, most).join(' ')}'; run 'nic-emulator --help'`);
  }
  const control = values.control ?? DEFAULT_CONTROL;
  const json = values.json === true;
  const client = () => {
    const c = ControlClient.parse(control, '--control');
    requireLoopback('--control', control, c.host); // the control API listens on loopback only: nothing to ask elsewhere
    return c;
  };

  switch (verb) {
    case 'start':
      return start(values, control);
    case 'status': {
      const data = positionals[1] ? await client().get(`/v1/nics/${encodeURIComponent(positionals[1])}`) : await client().get('/v1/nics');
      if (json) return printJson(data);
      const rows = Array.isArray(data) ? data : [data];
      for (const r of rows as Record<string, any>[]) {
        const g = (x: any) => (x ? x.generation : '-');
        const sa = r.sa ? `sa active=${g(r.sa.active)} previous=${g(r.sa.previous)} pending=${g(r.sa.pending)}` : 'sa -';
        const c = r.counters;
        const dropped = c ? Object.entries(c.dropped as Record<string, number>).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(',') || '0' : '-';
        process.stdout.write(
          `${r.id.padEnd(8)} ${String(r.address).padEnd(11)} ${String(r.state).padEnd(9)} host=${String(r.host).padEnd(8)} link=${r.link} ${sa} ` +
            `rx clear=${c?.accepted.clear ?? '-'} secure=${c?.accepted.secure ?? '-'} dropped ${dropped} refused=${c?.refusedClear ?? '-'} ` +
            `eeprom-writes=${r.eepromWrites?.total ?? '-'}${r.error ? ' ERROR: ' + r.error : ''}\n`,
        );
      }
      return;
    }
    case 'host': {
      const [, nic, event] = positionals;
      if (!nic || !event) throw new UsageError('E_USAGE', 'usage: nic-emulator host NIC EVENT (see --help for events)');
      const r = await client().post<{ from: string; to: string }>(`/v1/nics/${encodeURIComponent(nic)}/host`, { event });
      if (json) return printJson({ ok: true, nic, event, ...r });
      process.stdout.write(`${nic}: ${event}: ${r.from} -> ${r.to}\n`);
      return;
    }
    case 'exec-log': {
      const nic = positionals[1];
      if (!nic) throw new UsageError('E_USAGE', 'usage: nic-emulator exec-log NIC');
      const log = await client().get<Record<string, unknown>[]>(`/v1/nics/${encodeURIComponent(nic)}/exec-log`);
      if (json) return printJson(log);
      for (const e of log) process.stdout.write(`${e.at} ${e.via} ${e.command} seq=${e.rmcpSeq} tag=${e.tag} sa=${e.generation} ${e.hostBefore}->${e.hostAfter}\n`);
      return;
    }
    case 'fault': {
      const [, nic, kind, at] = positionals;
      if (!nic || kind !== 'tear-next-write' || at === undefined) throw new UsageError('E_USAGE', 'usage: nic-emulator fault NIC tear-next-write BYTE');
      if (!/^\d+$/.test(at) || !Number.isSafeInteger(Number(at))) throw new UsageError('E_USAGE', `tear-next-write: BYTE must be a whole number >= 0, got '${at}'`);
      await client().post(`/v1/nics/${encodeURIComponent(nic)}/fault`, { kind, atByte: Number(at) });
      if (json) return printJson({ ok: true });
      process.stdout.write(`${nic}: next EEPROM write will be torn after ${at} bytes\n`);
      return;
    }
    case 'policy': {
      const [, nic, file] = positionals;
      if (!nic || !file) throw new UsageError('E_USAGE', 'usage: nic-emulator policy NIC FILE');
      const text = readPolicyFile(file);
      await client().post(`/v1/nics/${encodeURIComponent(nic)}/policy`, { text, source: file });
      if (json) return printJson({ ok: true });
      process.stdout.write(`${nic}: cluster policy from ${file} written\n`);
      return;
    }
    case 'stop':
      await client().post('/v1/shutdown');
      if (json) return printJson({ ok: true });
      process.stdout.write('emulator stopping\n');
      return;
    default:
      throw new UsageError('E_USAGE', `unknown command '${verb}'; run 'nic-emulator --help'`);
  }
}

/**
 * A policy file, read up to what a NIC's EEPROM holds (CLUSTER_POLICY_MAX bytes) and one byte more: a longer file,
 * or a device that never ends (/dev/zero), is E_POLICY without reading the rest. Unreadable: E_USAGE.
 */
function readPolicyFile(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new UsageError('E_USAGE', `cannot read policy file ${file}: ${(e as Error).message}`);
  }
  const tooLong = (what: string) => new UsageError('E_POLICY', `${file}: the policy is ${what} bytes; the NIC's EEPROM holds at most ${CLUSTER_POLICY_MAX}`);
  const buf = Buffer.alloc(CLUSTER_POLICY_MAX + 1);
  let n = 0;
  try {
    const st = fstatSync(fd);
    if (st.isFile() && st.size > CLUSTER_POLICY_MAX) throw tooLong(String(st.size)); // a file says its size: not read
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError('E_USAGE', `cannot read policy file ${file}: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
  if (n > CLUSTER_POLICY_MAX) throw tooLong(`over ${CLUSTER_POLICY_MAX}`); // a device or pipe that goes on (/dev/zero)
  return buf.subarray(0, n).toString('utf8');
}

/** The value given for --NAME, `def` when absent; E_USAGE unless it is one of `allowed`. */
function oneOf<T extends string>(v: string | undefined, def: T, name: string, allowed: readonly T[]): T {
  if (v === undefined) return def;
  if (!(allowed as readonly string[]).includes(v)) throw new UsageError('E_USAGE', `--${name} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
}

/**
 * K, sequence numbers per checkpoint (firmware/sa-database.ts). At least 4096: a station process claims its
 * numbers in blocks of 1024 (mgmt-station/core/session.ts), and a gap that size must stay within the K/2 a
 * reservation runs ahead, or the lost-checkpoint margin (two blocks) would not cover a checkpoint written across
 * it. At most 65536: each NIC restart can skip 2K of an SA's 32-bit sequence space (ESN off) and each silence
 * costs the station about 2.5K, so a larger K uses an SA up in fewer restarts (at 2^31, in one).
 */
const MIN_CHECKPOINT_BLOCK = 4096;
const MAX_CHECKPOINT_BLOCK = 65536;

async function start(values: Record<string, string | boolean | undefined>, control: string): Promise<void> {
  const log = createLogger({
    format: oneOf<LogFormat>(values['log-format'] as string | undefined, 'text', 'log-format', LOG_FORMATS),
    level: oneOf<LogLevel>(values['log-level'] as string | undefined, 'info', 'log-level', LOG_LEVELS),
    component: PROG,
    // Per NIC and reason at most 5 lines per 10 s, the rest summarised: a flood of refused clear commands or IKE
    // requests moves the NIC's counters, not the log (lib/log-limit.ts).
    limit: new LogLimiter(),
  });
  const { host, port } = parseHostPort(control, 8623, '--control');
  requireLoopback('--control', control, host);
  const portBase = values['port-base'] !== undefined ? intOption(values['port-base'] as string, 0, 'port-base') : null;
  const hostState = (values['host-state'] as string | undefined) ?? 'up';
  if (!(HOST_STATES as readonly string[]).includes(hostState)) throw new UsageError('E_USAGE', `--host-state must be one of ${HOST_STATES.join(', ')}`);
  const policy = (values.policy as string | undefined) ?? 'esp';
  if (policy !== 'esp' && policy !== 'esp+ah') throw new UsageError('E_USAGE', `--policy must be esp or esp+ah, got '${policy}'`);
  let allowed = 0;
  const cm = values['clear-management'] as string | undefined;
  if (cm) {
    for (const c of cm.split(',').map((s) => s.trim()).filter(Boolean)) {
      const bit = CLEAR_COMMAND_BIT[c as AsfCommandEvent];
      if (!bit) throw new UsageError('E_USAGE', `--clear-management: unknown command '${c}' (reset, power-up, power-down, power-cycle)`);
      allowed |= bit;
    }
  }
  const busyPollUs = intOption(values['busy-poll-us'] as string | undefined, DEFAULT_BUSY_POLL_MAX_US, 'busy-poll-us', 0, MAX_BUSY_POLL_US);
  const udpIo = (values['udp-io'] as string | undefined) ?? defaultUdpIo();
  if (udpIo !== 'batch' && udpIo !== 'dgram') throw new UsageError('E_USAGE', `--udp-io must be batch or dgram, got '${udpIo}'`);
  const notBuilt = batchUdpUnavailable();
  if (udpIo === 'batch' && notBuilt) throw new UsageError('E_USAGE', `--udp-io batch: ${notBuilt}; or use --udp-io dgram`);
  if (udpIo === 'dgram' && values['udp-io'] === undefined) log.log('info', 'batched UDP not built: the NICs use node:dgram', { why: notBuilt });
  const fleet = new Fleet({
    nics: intOption(values.nics as string | undefined, 4, 'nics'),
    firstAddress: (values['first-address'] as string | undefined) ?? (portBase !== null ? '127.0.0.1' : '127.0.1.1'),
    portBase,
    dataDir: (values['data-dir'] as string | undefined) ?? 'var/nics',
    bootDelayMs: intOption(values['boot-delay'] as string | undefined, 2000, 'boot-delay'),
    initialHostState: hostState as HostState,
    initialConfig: {
      securityPolicy: policy as SecurityPolicy,
      clearManagement: allowed !== 0,
      allowedClearCommands: allowed,
      trustAnchor: { kind: 'none', key: new Uint8Array(32) },
      clusterPolicy: '',
    },
    checkpointBlock: values['checkpoint-block'] !== undefined ? intOption(values['checkpoint-block'] as string, 16384, 'checkpoint-block', MIN_CHECKPOINT_BLOCK, MAX_CHECKPOINT_BLOCK) : undefined,
    busyPoll: new BusyPoll(busyPollUs),
    udpIo,
    log,
  });
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log.log('info', 'stopping', { why });
    await server.close().catch(() => undefined);
    await fleet.stop();
    log.flush();
    process.exit(EXIT.OK);
  };
  const server = await startControlServer(fleet, host, port, () => void shutdown('control API')).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'EADDRINUSE') throw new UsageError('E_USAGE', `control address ${host}:${port} is in use: another emulator running? try 'nic-emulator stop' or another --control`);
    if (e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') throw new UsageError('E_USAGE', `cannot listen on control address ${host}:${port} (${e.message}); try another --control`);
    throw e;
  });
  const bar = progress('starting NICs');
  const t0 = performance.now();
  try {
    await fleet.start((d, t) => bar.update(d, t));
  } catch (e) {
    bar.done();
    await server.close();
    await fleet.stop();
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EACCES') throw new UsageError('E_USAGE', `cannot bind ports below 1024 (${err.message}): run as root, grant 'setcap cap_net_bind_service=+ep $(command -v node)', or use --port-base 10000`);
    if (err.code === 'EADDRINUSE') throw new UsageError('E_USAGE', `address in use (${err.message}): another emulator running? try 'nic-emulator stop' or other --first-address/--port-base`);
    if (err.code === 'EADDRNOTAVAIL') throw new UsageError('E_USAGE', `address not available (${err.message}): on this OS add loopback aliases or use --port-base`);
    throw e;
  }
  bar.done();
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  const running = fleet.nics.filter((n) => n.runState === 'running').length;
  const first = fleet.nics[0].addr;
  const last = fleet.nics[fleet.nics.length - 1].addr;
  const ready = {
    ready: true, pid: process.pid, nics: fleet.nics.length, running, failed: fleet.nics.length - running,
    first: `${first.address}:${first.clearPort}`, last: `${last.address}:${last.clearPort}`,
    control: `${host}:${server.port}`, startMs: Math.round(performance.now() - t0),
  };
  if (values.json) process.stdout.write(JSON.stringify(ready) + '\n');
  else
    process.stdout.write(
      `nic-emulator: ${running}/${fleet.nics.length} NICs running (${ready.first} .. ${ready.last}), control http://${ready.control}, started in ${ready.startMs} ms\n`,
    );
  for (const n of fleet.nics.filter((x) => x.runState === 'failed')) process.stderr.write(`${PROG}: ${n.id} failed: ${n.error}\n`);
}

exitQuietlyOnEpipe();
main(process.argv.slice(2)).catch((e) => fail(PROG, e, process.argv.includes('--json')));
