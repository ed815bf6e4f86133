/**
 * nic-emulator: hosts a fleet of emulated management NICs and their hosts.
 * Run `nic-emulator --help` for the verbs; README "CLI reference" documents them with exit codes.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { BusyPoll, DEFAULT_BUSY_POLL_MAX_US } from './busy-poll.js';
import { batchUdpUnavailable, defaultUdpIo } from '../lib/batch-udp.js';
import { MAX_BUSY_POLL_US } from '../lib/poll-loop.js';
import { Fleet, type SharedSockets } from './fleet.js';
import { startControlServer } from './control-server.js';
import { ControlClient, DEFAULT_CONTROL } from '../lib/control-client.js';
import { createLogger, type LogFormat, type LogLevel } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { EXIT, exitQuietlyOnEpipe, fail, fmtCounts, intOption, parseHostPort, printJson, progress, requireLoopback } from '../lib/cli.js';
import { parseCommandLine, type Values } from '../lib/cli-args.js';
import { runFleet } from '../lib/fleet-run.js';
import { isFleetTarget, resolveTargets } from '../lib/nic-targets.js';
import { EMULATOR_CLI } from './cli-spec.js';
import { LifelineError, UsageError } from '../common/errors.js';
import { CLEAR_COMMAND_BIT } from '../firmware/nic-firmware.js';
import { CLUSTER_POLICY_MAX } from '../firmware/eeprom-image.js';
import { HOST_STATES, type HostState, type AsfCommandEvent } from '../firmware/host-state.js';
import type { SecurityPolicy } from '../wire/sa.js';
import { parseIpmiUserSpec, type IpmiUsersConfig } from '../firmware/ipmi/ipmi-users-record.js';
import { assertIpmiUsers } from '../firmware/ipmi/users.js';

const PROG = 'nic-emulator';
const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];
const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** How many positional words each verb takes, the verb included: more is a usage error, not silently ignored. */
const MAX_POSITIONALS: Record<string, number> = { start: 1, status: 2, host: 3, 'exec-log': 2, fault: 4, policy: 3, 'ipmi-users': 2, stop: 1 };

/** A NIC as GET /v1/nics lists it (NicNode.status()): what TARGET resolution and the status line read. */
type NicStatus = Record<string, any> & { id: string; address: string; ports?: { clear: number; secure: number; ike: number } };

async function main(argv: string[]): Promise<void> {
  const cl = parseCommandLine(EMULATOR_CLI, argv);
  if (cl.kind !== 'run') {
    process.stdout.write(cl.text + '\n');
    process.exit(cl.kind === 'help' ? cl.exitCode : EXIT.OK);
  }
  const { verb, values, positionals } = cl;
  const most = MAX_POSITIONALS[verb];
  if (positionals.length > most) {
    throw new UsageError('E_USAGE', `unexpected argument '${positionals[most]}' after '${positionals.slice(0, most).join(' ')}'; run 'nic-emulator ${verb} --help'`);
  }
  const control = (values.control as string | undefined) ?? DEFAULT_CONTROL;
  const json = values.json === true;
  const client = () => {
    const c = ControlClient.parse(control, '--control');
    requireLoopback('--control', control, c.host); // the control API listens on loopback only: nothing to ask elsewhere
    return c;
  };
  const target = verb === 'start' || verb === 'stop' ? undefined : positionals[1];
  const nics = () => client().get<NicStatus[]>('/v1/nics');
  // The NICs a TARGET of several names (lib/nic-targets.ts); one NIC by id or address the emulator finds itself.
  const fleet = async (): Promise<string[]> =>
    resolveTargets(target!, (await nics()).map((n) => ({ id: n.id, address: n.address, ports: n.ports ? [n.ports.clear, n.ports.secure, n.ports.ike] : [] })));
  const isFleet = target !== undefined && isFleetTarget(target);
  const path = (nic: string, rest = '') => `/v1/nics/${encodeURIComponent(nic)}${rest}`;

  switch (verb) {
    case 'start':
      return start(values, control);
    case 'status': {
      let data: NicStatus | NicStatus[];
      if (target === undefined) data = await nics();
      else if (isFleet) {
        const ids = await fleet();
        data = (await nics()).filter((n) => ids.includes(n.id));
      } else data = await client().get<NicStatus>(path(target));
      if (json) return printJson(data);
      for (const r of Array.isArray(data) ? data : [data]) process.stdout.write(statusLine(r) + '\n');
      return;
    }
    case 'host': {
      const event = positionals[2];
      if (!target || !event) throw new UsageError('E_USAGE', 'usage: nic-emulator host TARGET EVENT (see nic-emulator host --help for events)');
      const one = (nic: string) => client().post<{ from: string; to: string }>(path(nic, '/host'), { event });
      if (isFleet) {
        await runFleet({ prog: PROG, verb: `host ${event}`, ids: await fleet(), json, one: async (nic) => ({ event, ...(await one(nic)) }), line: (nic, r) => `${nic}: ${event}: ${r.from} -> ${r.to}` });
        return;
      }
      const r = await one(target);
      if (json) return printJson({ ok: true, nic: target, event, ...r });
      process.stdout.write(`${target}: ${event}: ${r.from} -> ${r.to}\n`);
      return;
    }
    case 'exec-log': {
      if (!target) throw new UsageError('E_USAGE', 'usage: nic-emulator exec-log TARGET');
      const one = (nic: string) => client().get<Record<string, unknown>[]>(path(nic, '/exec-log'));
      if (isFleet) {
        await runFleet({ prog: PROG, verb, ids: await fleet(), json, concurrency: 1, one: async (nic) => ({ entries: await one(nic) }), line: (nic, r) => r.entries.map((e) => `${nic} ${execLine(e)}`).join('\n') || `${nic}: nothing executed` });
        return;
      }
      const log = await one(target);
      if (json) return printJson(log);
      for (const e of log) process.stdout.write(execLine(e) + '\n');
      return;
    }
    case 'fault': {
      const [, , kind, at] = positionals;
      if (!target || kind !== 'tear-next-write' || at === undefined) throw new UsageError('E_USAGE', 'usage: nic-emulator fault TARGET tear-next-write BYTE');
      if (!/^\d+$/.test(at) || !Number.isSafeInteger(Number(at))) throw new UsageError('E_USAGE', `tear-next-write: BYTE must be a whole number >= 0, got '${at}'`);
      const one = async (nic: string) => void (await client().post(path(nic, '/fault'), { kind, atByte: Number(at) }));
      const text = (nic: string) => `${nic}: next EEPROM write will be torn after ${at} bytes`;
      if (isFleet) return void (await runFleet({ prog: PROG, verb: 'fault', ids: await fleet(), json, one: async (nic) => (await one(nic), { kind, atByte: Number(at) }), line: text }));
      await one(target);
      if (json) return printJson({ ok: true });
      process.stdout.write(text(target) + '\n');
      return;
    }
    case 'policy': {
      const file = positionals[2];
      if (!target || !file) throw new UsageError('E_USAGE', 'usage: nic-emulator policy TARGET FILE');
      const text = readPolicyFile(file);
      const one = async (nic: string) => void (await client().post(path(nic, '/policy'), { text, source: file }));
      const line = (nic: string) => `${nic}: cluster policy from ${file} written`;
      if (isFleet) return void (await runFleet({ prog: PROG, verb, ids: await fleet(), json, one: async (nic) => (await one(nic), { file }), line }));
      await one(target);
      if (json) return printJson({ ok: true });
      process.stdout.write(line(target) + '\n');
      return;
    }
    case 'ipmi-users': {
      const specs = (values['ipmi-user'] as string[] | undefined) ?? [];
      if (!target || (specs.length === 0) === !values.off) {
        throw new UsageError('E_USAGE', 'usage: nic-emulator ipmi-users TARGET --ipmi-user NAME:PASSWORD[:PRIV] ... | --off');
      }
      const config = values.off ? { enabled: false, users: [] } : ipmiUsersOption(specs)!;
      const result = { lanplus: config.enabled, users: config.users.map((u) => ({ name: u.name, privilege: u.privilege })) };
      const one = async (nic: string) => void (await client().post(path(nic, '/ipmi-users'), config));
      const line = (nic: string) => (config.enabled ? `${nic}: lanplus on, IPMI users ${config.users.map((u) => `${u.name} (${u.privilege})`).join(', ')}` : `${nic}: lanplus off, no IPMI users`);
      if (isFleet) return void (await runFleet({ prog: PROG, verb, ids: await fleet(), json, one: async (nic) => (await one(nic), result), line }));
      await one(target);
      if (json) return printJson({ ok: true, nic: target, ...result });
      process.stdout.write(line(target) + '\n');
      return;
    }
    case 'stop': {
      // Nothing listening at the control address: the emulator is stopped, which is what was asked (as `systemctl
      // stop` of a stopped unit). Said on stderr, exit 0; JSON says running: false.
      const c = client();
      const stopped = await c.post('/v1/shutdown').then(
        () => true,
        (e: unknown) => {
          if (e instanceof LifelineError && e.code === 'E_UNREACHABLE' && /ECONNREFUSED/.test(e.message)) return false;
          throw e;
        },
      );
      if (json) return printJson({ ok: true, running: stopped });
      if (stopped) process.stdout.write('emulator stopping\n');
      else process.stderr.write(`${PROG}: no emulator is running at ${c.host}:${c.port}; nothing to stop\n`);
      return;
    }
    default:
      throw new UsageError('E_USAGE', `unknown command '${verb}'; run 'nic-emulator --help'`);
  }
}

/**
 * One NIC as `status` prints it: id, address, run state, host, link, SA slots, then its counters in the one form
 * both tools use (lib/cli.ts fmtCounts: `dropped=0`, `dropped=3 (replay=2,icv=1)`).
 */
function statusLine(r: NicStatus): string {
  const g = (x: any) => (x ? x.generation : '-');
  const sa = r.sa ? `sa active=${g(r.sa.active)} previous=${g(r.sa.previous)} pending=${g(r.sa.pending)}` : 'sa -';
  const c = r.counters;
  const counters = c
    ? `rx clear=${c.accepted.clear} secure=${c.accepted.secure} ${fmtCounts('dropped', c.dropped)} refused=${c.refusedClear}`
    : 'rx -';
  return `${r.id.padEnd(8)} ${String(r.address).padEnd(11)} ${String(r.state).padEnd(9)} host=${String(r.host).padEnd(8)} link=${r.link} ${sa} ` +
    `${counters} ${ipmiSummary(r.ipmi)} eeprom-writes=${r.eepromWrites?.total ?? '-'}${r.error ? ' ERROR: ' + r.error : ''}`;
}

/** One entry of a NIC's executed-command log. */
function execLine(e: Record<string, unknown>): string {
  const ipmi = e.ipmi as { user: string; sessionId: string; request: string } | undefined;
  const how = ipmi ? `user=${ipmi.user} session=${ipmi.sessionId} '${ipmi.request}'` : `seq=${e.rmcpSeq} tag=${e.tag} sa=${e.generation}`;
  return `${e.at} ${e.via} ${e.command} ${how} ${e.hostBefore}->${e.hostAfter}`;
}

/** `--ipmi-user` given (repeatable): lanplus on with those users, checked here (E_USAGE, exit 2); absent: undefined. */
function ipmiUsersOption(specs: string[] | undefined): IpmiUsersConfig | undefined {
  if (!specs || specs.length === 0) return undefined;
  const config: IpmiUsersConfig = { enabled: true, users: specs.map(parseIpmiUserSpec) };
  assertIpmiUsers(config.users);
  return config;
}

/** One status line's lanplus part: off, or on with its sessions and what it refused and dropped. */
function ipmiSummary(ipmi: any): string {
  if (!ipmi) return 'ipmi=-';
  if (!ipmi.lanplus) return 'ipmi=off';
  const c = ipmi.counters;
  return `ipmi=on users=${ipmi.users.length} sessions=${ipmi.sessions.length}` + (c ? ` ${fmtCounts('ipmi-refused', c.refused)} ${fmtCounts('ipmi-dropped', c.dropped)}` : '');
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

async function start(values: Values, control: string): Promise<void> {
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
  const ipmiUsers = ipmiUsersOption(values['ipmi-user'] as string[] | undefined);
  const fleet = new Fleet({
    ipmiUsers,
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
    sharedSockets: oneOf<SharedSockets>(values['shared-sockets'] as string | undefined, 'auto', 'shared-sockets', ['auto', 'on', 'off']),
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
  const first0 = fleet.nics[0].addr;
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
    if (err.code === 'EADDRINUSE' && fleet.shared) {
      throw new UsageError('E_USAGE', `address in use (${err.message}): the fleet's shared sockets bind ports ${first0.clearPort}, ${first0.securePort} and ${first0.ikePort} on every address, and another process holds one of them (another emulator?); stop it, or use --shared-sockets off (a socket per NIC and port: up to 3 file descriptors a NIC) or --port-base`);
    }
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
