/**
 * strongSwan interop harness (test-only). `runInterop(scenario)` starts this very file as a child
 * process inside a private network and mount namespace (`unshare -n -m`): there it mounts a tmpfs
 * on /run (charon's fixed pid file and VICI socket stay private), brings `lo` up, writes its own
 * strongswan.conf, swanctl.conf and PSK, compiles the XFRM shim (xfrm-shim.c, LD_PRELOAD: the
 * kernel here has no ESP AEAD) with cc, starts tshark and charon, and runs the pure IkeResponder
 * or IkeInitiator behind a tiny UDP shell on 127.0.0.1:500 (charon uses ports 1500/14500,
 * shared/reference/strongswan-on-this-machine.md). It prints one JSON report on stdout.
 * Everything started is stopped by its pid before the child exits; the parent kills the child's
 * process group if the whole run passes its deadline. When the last process ends the namespace is gone.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IkeEffect } from '../../protocol/ike/effects.js';
import { IkeInitiator } from '../../protocol/ike/ike-initiator.js';
import { IkeResponder } from '../../protocol/ike/ike-responder.js';

export const CHARON = '/usr/lib/ipsec/charon';
export const SWANCTL = '/usr/sbin/swanctl';
const CHARON_PORT = 1500;
const IKE_PORT = 500;
const PSK = 'lifeline-interop-psk-0123456789';
const SHIM_SOURCE = fileURLToPath(new URL('../../../test/support/xfrm-shim.c', import.meta.url));

/**
 * The pure machines behind a tiny UDP shell (this file), or the real processes (strongswan-processes.ts):
 * 'charon-to-nic' = charon initiating to a NIC's host agent in a running nic-emulator, 'station-to-charon' =
 * `mgmt-station enroll`/`refresh` (through `mgmt-station serve`) initiating to charon standing in for a host.
 */
export type Scenario = 'charon-initiates' | 'lifeline-initiates' | 'charon-to-nic' | 'station-to-charon';
const PROCESS_SCENARIOS: Scenario[] = ['charon-to-nic', 'station-to-charon'];

export interface InteropReport {
  scenario: Scenario;
  ok: boolean;
  error?: string;
  /** Our machine's effects, in order: kind plus the interesting fields. */
  effects: string[];
  drops: Record<string, number>;
  charonLog: string;
  /** tshark over the capture: IKE packets, malformed ones, exchange types seen. */
  packets: number;
  malformed: number;
  exchanges: Record<string, number>;
  ms: number;
}

/** Why the interop tests cannot run here, or null. */
export function strongswanSkipReason(): string | null {
  if (!existsSync(CHARON) || !existsSync(SWANCTL)) return `strongSwan is not installed (${CHARON}, ${SWANCTL}: apt-get install strongswan-charon strongswan-swanctl)`;
  for (const tool of ['cc', 'tshark', 'unshare', 'ip']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed`;
    }
  }
  try {
    execFileSync('unshare', ['-n', '-m', 'true'], { stdio: 'ignore', timeout: 5000 });
  } catch (e) {
    return `network namespaces are refused here (unshare -n -m: ${(e as Error).message.split('\n')[0]})`;
  }
  return null;
}

/** Runs one scenario in its own namespace; resolves with the child's report. */
export function runInterop(scenario: Scenario, deadlineMs: number): Promise<InteropReport> {
  const self = fileURLToPath(PROCESS_SCENARIOS.includes(scenario) ? new URL('./strongswan-processes.js', import.meta.url) : import.meta.url);
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['-n', '-m', '--propagation', 'private', process.execPath, self, scenario], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid as number), 'SIGKILL'); // the child's own process group: charon, tshark, node
      } catch {
        /* already gone */
      }
    }, deadlineMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as InteropReport);
      } catch {
        reject(new Error(`interop child exited ${code} without a report:\n${out.slice(-2000)}\n${err.slice(-2000)}`));
      }
    });
  });
}

// ---- inside the namespace ----------------------------------------------------------------------

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

export function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv, timeout = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout }, (e, stdout, stderr) => (e ? reject(new Error(`${cmd} ${args.join(' ')}: ${e.message}\n${stdout}${stderr}`)) : resolve(stdout + stderr)));
  });
}

export function strongswanConf(dir: string, port = CHARON_PORT, natPort = port + 13000): string {
  return `charon {
  port = ${port}
  port_nat_t = ${natPort}
  install_routes = no
  install_virtual_ip = no
  retransmit_tries = 3
  retransmit_timeout = 1
  load = random nonce openssl aes sha1 sha2 hmac gcm kdf kernel-netlink socket-default vici
  delete_rekeyed_delay = 1
  filelog {
    lab {
      path = ${dir}/charon.log
      time_format = %T
      default = 1
      ike = 2
      cfg = 1
      knl = 1
      flush_line = yes
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
}
swanctl {
  socket = unix:///run/charon.vici
}
`;
}

function swanctlConf(scenario: Scenario): string {
  const charonInitiates = scenario === 'charon-initiates';
  const me = charonInitiates ? 'station.lab' : 'nic-1.lab';
  const peer = charonInitiates ? 'nic-1.lab' : 'station.lab';
  return `connections {
  lab {
    version = 2
    local_addrs = 127.0.0.1
    remote_addrs = 127.0.0.1
    remote_port = ${IKE_PORT}
    proposals = aes128gcm16-prfsha256-curve25519
    rekey_time = ${charonInitiates ? 3 : 4}s
    over_time = 30s
    rand_time = 0s
    reauth_time = 0
    dpd_delay = 0
    mobike = no
    fragmentation = no
    local {
      auth = psk
      id = ${me}
    }
    remote {
      auth = psk
      id = ${peer}
    }
    children {
      nic {
        mode = transport
        esp_proposals = aes128gcm16-curve25519-noesn
        local_ts = ${charonInitiates ? 'dynamic[udp]' : 'dynamic[udp/664]'}
        remote_ts = ${charonInitiates ? 'dynamic[udp/664]' : 'dynamic[udp]'}
        rekey_time = ${charonInitiates ? 3 : 4}s
        life_time = 60s
        rand_time = 0s
        start_action = none
      }
    }
  }
}
secrets {
  ike-lab {
    id-1 = station.lab
    id-2 = nic-1.lab
    secret = "${PSK}"
  }
}
`;
}

/** The UDP shell around one pure machine: receive, timers, send; every effect logged. */
class Shell {
  readonly socket = dgram.createSocket('udp4');
  readonly effects: IkeEffect[] = [];
  private peer = { address: '127.0.0.1', port: CHARON_PORT };
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly m: IkeInitiator | IkeResponder) {
    this.socket.on('message', (msg, from) => {
      this.peer = { address: from.address, port: from.port };
      const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
      this.perform(m instanceof IkeResponder ? m.receive(bytes, Date.now(), { address: from.address }) : m.receive(bytes, Date.now()));
    });
    this.timer = setInterval(() => {
      const at = this.m.pollTimeout();
      if (at !== null && Date.now() >= at) this.perform(this.m.handleTimeout(Date.now()));
    }, 10);
  }

  bind(): Promise<void> {
    return new Promise((r) => this.socket.bind(IKE_PORT, '127.0.0.1', () => r()));
  }

  perform(fx: IkeEffect[]): void {
    for (const e of fx) {
      if (e.kind === 'send') this.socket.send(e.bytes, this.peer.port, this.peer.address);
      else this.effects.push(e);
    }
  }

  count(kind: IkeEffect['kind']): number {
    return this.effects.filter((e) => e.kind === kind).length;
  }

  close(): void {
    clearInterval(this.timer);
    this.socket.close();
  }
}

function describeEffect(e: IkeEffect): string {
  switch (e.kind) {
    case 'child-sa':
    case 'switch-outbound':
    case 'nic-write-pending':
      return `${e.kind} gen ${e.sa.generation} ${e.sa.toNic.spi.toString(16)}/${e.sa.fromNic.spi.toString(16)}`;
    case 'nic-commit':
    case 'nic-discard':
    case 'commit-aborted':
      return `${e.kind} gen ${e.generation}`;
    case 'failed':
      return `failed ${e.scope} ${e.code}: ${e.message}`;
    case 'log':
      return `log ${e.level} ${e.event}: ${e.message}`;
    case 'closed':
      return `closed: ${e.message}`;
    case 'ike-rekeyed':
      return `ike-rekeyed ${e.oldSpiI}/${e.oldSpiR} -> ${e.spiI}/${e.spiR}`;
    default:
      return e.kind;
  }
}

export async function stop(p: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill(signal);
  const t = setTimeout(() => p.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(t);
}

// ---- shared by both kinds of scenario (strongswan-processes.ts too) ---------------------------

/** In the fresh namespace: a private /run (charon's pid file and VICI socket), lo up, the XFRM shim built. */
export function namespaceUp(dir: string): void {
  execFileSync('mount', ['-t', 'tmpfs', 'lifeline-run', '/run']);
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', join(dir, 'xfrm-shim.so'), SHIM_SOURCE, '-ldl']);
}

/** tshark capturing every UDP datagram on lo into `pcap`; resolves once it captures. */
export async function startTshark(pcap: string): Promise<ChildProcess> {
  const tshark = spawn('tshark', ['-i', 'lo', '-f', 'udp', '-w', pcap], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  tshark.stderr?.on('data', (d) => (err += d));
  await until('tshark to capture', () => err.includes('Capturing on'), 10_000);
  return tshark;
}

/** charon with the XFRM shim preloaded and `dir`/swanctl.conf loaded. */
export async function startCharon(dir: string, env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const charon = spawn(CHARON, [], { env: { ...process.env, ...env, LD_PRELOAD: join(dir, 'xfrm-shim.so') }, stdio: 'ignore' });
  await until('charon VICI socket', () => existsSync('/run/charon.vici'), 10_000);
  await run(SWANCTL, ['--load-all', '--file', join(dir, 'swanctl.conf')], env);
  return charon;
}

/** IKE packets in the capture (UDP `ports` decoded as ISAKMP), by exchange type, and the malformed ones. */
export function analyseCapture(pcap: string, ports: number[], report: Pick<InteropReport, 'packets' | 'malformed' | 'exchanges' | 'error'>): void {
  try {
    const decode = ['-r', pcap, ...ports.flatMap((p) => ['-d', `udp.port==${p},isakmp`])];
    const types = execFileSync('tshark', [...decode, '-Y', 'isakmp', '-T', 'fields', '-e', 'isakmp.exchangetype'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    report.packets = types.length;
    for (const t of types) report.exchanges[t] = (report.exchanges[t] ?? 0) + 1;
    report.malformed = execFileSync('tshark', [...decode, '-Y', '_ws.malformed || _ws.expert.severity == error'], { encoding: 'utf8' }).split('\n').filter(Boolean).length;
  } catch (e) {
    report.error = (report.error ? report.error + '; ' : '') + `tshark: ${(e as Error).message}`;
  }
}

async function lab(scenario: Scenario): Promise<InteropReport> {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'lifeline-swan-'));
  let charon: ChildProcess | null = null;
  let tshark: ChildProcess | null = null;
  let shell: Shell | null = null;
  const report: InteropReport = { scenario, ok: false, effects: [], drops: {}, charonLog: '', packets: 0, malformed: 0, exchanges: {}, ms: 0 };
  try {
    namespaceUp(dir);
    writeFileSync(join(dir, 'strongswan.conf'), strongswanConf(dir));
    writeFileSync(join(dir, 'swanctl.conf'), swanctlConf(scenario), { mode: 0o600 });
    const env = { STRONGSWAN_CONF: join(dir, 'strongswan.conf') };
    tshark = await startTshark(join(dir, 'ike.pcap'));
    charon = await startCharon(dir, env);

    const psk = new TextEncoder().encode(PSK);
    const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
    if (scenario === 'charon-initiates') {
      const host = new IkeResponder({ random, psk, id: 'nic-1.lab', nextGeneration: 1 });
      shell = new Shell(host);
      await shell.bind();
      const s = shell;
      await run(SWANCTL, ['--initiate', '--child', 'nic', '--timeout', '10'], env);
      await until('a committed Child SA', () => s.count('nic-commit') >= 1, 5000);
      // charon rekeys a Child SA when the kernel reports its soft lifetime (XFRM_MSG_EXPIRE), which the
      // shim does not emulate: ask for it over VICI. The IKE SA rekey is charon's own timer (5 s).
      await run(SWANCTL, ['--rekey', '--child', 'nic'], env);
      await until('a Child SA rekey from charon', () => s.count('nic-commit') >= 2, 5000);
      await until('an IKE SA rekey from charon', () => s.count('ike-rekeyed') >= 1, 8000);
      await run(SWANCTL, ['--rekey', '--child', 'nic'], env); // and once more on the new IKE SA
      await until('a Child SA rekey on the rekeyed IKE SA', () => s.count('nic-commit') >= 3, 5000);
      await run(SWANCTL, ['--terminate', '--child', 'nic', '--timeout', '5'], env); // charon deletes the Child SA
      await sleep(300);
      s.perform(host.shutdown(Date.now())); // we delete the IKE SA
      await until('charon to answer our D(IKE)', () => s.count('closed') >= 1, 5000);
      report.drops = host.drops;
    } else {
      shell = new Shell(new IkeInitiator({ random, psk, id: 'station.lab', peerId: 'nic-1.lab' }));
      await shell.bind();
      const s = shell;
      const station = s['m'] as IkeInitiator;
      s.perform(station.connect(Date.now()));
      await until('the IKE SA and its Child SA', () => s.count('switch-outbound') >= 1, 5000);
      s.perform(station.refresh(Date.now())); // our Child SA rekey
      await until('our Child SA rekey', () => s.count('switch-outbound') >= 2, 5000);
      await until('an idle IKE SA', () => station.canRefresh, 5000);
      s.perform(station.rekeyIkeSa(Date.now())); // our IKE SA rekey
      await until('our IKE SA rekey', () => s.count('ike-rekeyed') >= 1, 5000);
      // charon's Child SA rekey (asked over VICI: its rekey timer is the kernel's soft expire, not emulated)
      await run(SWANCTL, ['--rekey', '--child', 'nic'], env);
      await until('a Child SA rekey from charon', () => s.count('switch-outbound') >= 3, 5000);
      await until('an IKE SA rekey from charon (6 s timer)', () => s.count('ike-rekeyed') >= 2, 8000);
      await run(SWANCTL, ['--terminate', '--ike', 'lab', '--timeout', '5'], env); // charon deletes the IKE SA
      await until('the station to see the D(IKE)', () => s.count('closed') >= 1, 5000);
      report.drops = station.drops;
    }
    report.ok = true;
  } catch (e) {
    report.error = (e as Error).message;
  } finally {
    report.effects = shell ? shell.effects.map(describeEffect) : [];
    shell?.close();
    await stop(charon, 'SIGTERM');
    await sleep(200);
    await stop(tshark, 'SIGINT');
    try {
      report.charonLog = readFileSync(join(dir, 'charon.log'), 'utf8');
    } catch {
      /* charon never started */
    }
    analyseCapture(join(dir, 'ike.pcap'), [IKE_PORT, CHARON_PORT], report);
    rmSync(dir, { recursive: true, force: true });
    report.ms = Date.now() - t0;
  }
  return report;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const scenario = process.argv[2] as Scenario;
  lab(scenario).then((r) => {
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(0);
  });
}
