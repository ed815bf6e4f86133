/**
 * `nic-emulator start`: the fleet of NICs in this process, its control API, until Ctrl-C, SIGTERM or `stop`
 * (nic-emulator/cli.ts loads this for `start` only).
 */
import { BusyPoll, DEFAULT_BUSY_POLL_MAX_US } from './busy-poll.js';
import { batchUdpUnavailable, defaultUdpIo } from '../lib/batch-udp.js';
import { MAX_BUSY_POLL_US } from '../lib/poll-loop.js';
import { networkInterfaces } from 'node:os';
import dgram from 'node:dgram';
import { Fleet, type LazyBoot, type SharedSockets } from './fleet.js';
import { missingAddresses, parseIdPrefix, type NicAddress } from './addressing.js';
import { startControlServer } from './control-server.js';
import { createLogger, type LogFormat, type LogLevel } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { EXIT, intOption, parseHostPort, progress, requireLoopback } from '../lib/cli.js';
import type { Values } from '../lib/cli-args.js';
import { UsageError } from '../common/errors.js';
import { CLEAR_COMMAND_BIT } from '../firmware/nic-firmware.js';
import { HOST_STATES, type HostState, type AsfCommandEvent } from '../firmware/host-state.js';
import type { SecurityPolicy } from '../wire/sa.js';
import { ipmiUsersOption } from './ipmi-users-option.js';

const PROG = 'nic-emulator';
const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];
const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

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
/**
 * Address-per-NIC outside 127/8: every NIC address must be this host's, or its NIC would run without sockets. The
 * interfaces' addresses (os.networkInterfaces()) are the fast path; libuv lists only interfaces that are up and
 * running, so an address not among them is tried with a bind before it is refused (E_USAGE naming it).
 */
async function refuseForeignAddresses(addrs: NicAddress[]): Promise<void> {
  const local = new Set(Object.values(networkInterfaces()).flatMap((l) => (l ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address)));
  for (const address of missingAddresses(addrs, local)) {
    const s = dgram.createSocket('udp4');
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      s.once('error', resolve);
      s.bind(0, address, () => resolve(null));
    });
    s.close();
    if (err?.code === 'EADDRNOTAVAIL') {
      throw new UsageError('E_USAGE', `NIC address ${address} is on no interface of this host: outside 127/8 add the NICs' addresses first ` +
        `(ip addr add ${address}/24 dev IF), or use a 127.x.y.z --first-address or --port-base`);
    }
  }
}

const MIN_CHECKPOINT_BLOCK = 4096;
const MAX_CHECKPOINT_BLOCK = 65536;

export async function start(values: Values, control: string): Promise<void> {
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
    idPrefix: values['id-prefix'] !== undefined ? parseIdPrefix(values['id-prefix'] as string) : undefined,
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
    lazyBoot: oneOf<LazyBoot>(values['lazy-boot'] as string | undefined, 'auto', 'lazy-boot', ['auto', 'on', 'off']),
    log,
  });
  if (portBase === null) await refuseForeignAddresses(fleet.nics.map((n) => n.addr));
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
    if (err.code === 'EADDRNOTAVAIL') {
      throw new UsageError('E_USAGE', `address not available (${err.message}): a NIC address outside 127/8 must be on an interface first (ip addr add ADDRESS/PREFIX dev IF); on an OS without the whole 127/8 on loopback add aliases; or use --port-base`);
    }
    throw e;
  }
  bar.done();
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  // Lazy boot (fleet.ts): the NICs boot after this line; `booting` says how many have not yet, and `running` and
  // `failed` count the others (each NIC a datagram or a control call names boots at once).
  const running = fleet.nics.filter((n) => n.runState === 'running').length;
  const booting = fleet.booting;
  const first = fleet.nics[0].addr;
  const last = fleet.nics[fleet.nics.length - 1].addr;
  const ready = {
    ready: true, pid: process.pid, nics: fleet.nics.length, running, failed: fleet.nics.length - running - booting, booting,
    first: `${first.address}:${first.clearPort}`, last: `${last.address}:${last.clearPort}`, firstId: first.id, lastId: last.id,
    control: `${host}:${server.port}`, startMs: Math.round(performance.now() - t0),
  };
  if (values.json) process.stdout.write(JSON.stringify(ready) + '\n');
  else if (booting > 0)
    process.stdout.write(
      `nic-emulator: ${fleet.nics.length} NICs ready, booting from their EEPROMs in the background (${first.id} ${ready.first} .. ${last.id} ${ready.last}), control http://${ready.control}, started in ${ready.startMs} ms\n`,
    );
  else
    process.stdout.write(
      `nic-emulator: ${running}/${fleet.nics.length} NICs running (${first.id} ${ready.first} .. ${last.id} ${ready.last}), control http://${ready.control}, started in ${ready.startMs} ms\n`,
    );
  const reportFailed = () => {
    for (const n of fleet.nics.filter((x) => x.runState === 'failed')) process.stderr.write(`${PROG}: ${n.id} failed: ${n.error}\n`);
  };
  if (booting === 0) reportFailed();
  else {
    void fleet.allBooted.then(({ ms }) => {
      if (stopping) return;
      const up = fleet.nics.filter((n) => n.runState === 'running').length;
      const failed = fleet.nics.filter((n) => n.runState === 'failed').length;
      log.log('info', 'every NIC booted', { running: up, failed, ms });
      reportFailed();
    }, (e: unknown) => {
      // A fault in the background boot itself (a NIC's own boot failure fails that NIC, not this): said, not fatal.
      log.log('error', 'background boot stopped', { code: (e as { code?: string }).code ?? 'E_INTERNAL', error: (e as Error).message });
    });
  }
}
