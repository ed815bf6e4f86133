/**
 * Fleet of enrolled NICs (issue 16): N NICs that hold an SA and a trust anchor, in one `nic-emulator` process.
 *
 * Enrolment is driven by the bench in-process, not by a station (a station cannot enrol 100,000 NICs in a bench's
 * time yet): for each NIC the bench boots the NIC's own firmware (firmware/nic-machine.ts) on an in-memory EEPROM
 * and makes the two administrative calls the emulator's control API makes for `mgmt-station sa manual` and the
 * first half of `mgmt-station enroll` — `installSa` (manual keying: a complete SA, committed at once) and
 * `setTrustAnchor` (the IKE pre-shared key) — then writes the image as the NIC's EEPROM file. The emulator then
 * starts on that data directory (address-per-NIC as root, so shared sockets: nic-emulator/shared-ports.ts; files
 * on tmpfs like the `fleet` section) and is measured:
 *  - enrolled: NICs running with an active SA (`lifeline_nics_with_sa`) and host agents up (`lifeline_nic_host_agents`);
 *  - EMFILE: lines naming it on the emulator's stderr (a NIC that cannot open a socket or its EEPROM file logs it);
 *  - RSS per enrolled idle NIC = (VmRSS(N) - VmRSS(1)) / (N - 1), the 1-NIC process on an image enrolled the same way;
 *  - a restart on the same data directory: spawn to ready line (the target), and spawn to every NIC booted (the
 *    fleet boots lazily, nic-emulator/fleet.ts: ready first, each NIC's EEPROM read on its first datagram or
 *    control call, the rest in the background; `booting` in /v1/health reaches 0);
 *  - a secure System State Request (sync, then ESP on 664: lib/sync-client.ts, bench/probes.ts) to 100 random NICs,
 *    sent right after the restart's ready line, while the background boot runs (so most boot on their first datagram).
 * RSS and the enrolled counts are taken once every NIC has booted.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import dgram from 'node:dgram';
import { NicMachine } from '../firmware/nic-machine.js';
import { MemoryEepromDevice } from '../firmware/eeprom-device.js';
import { EEPROM_SIZE } from '../firmware/eeprom-record.js';
import { pooledRandom } from '../lib/random-pool.js';
import { assignAddresses, type NicAddress } from '../nic-emulator/addressing.js';
import { syncWithNic } from '../lib/sync-client.js';
import type { SaPair } from '../wire/sa.js';
import { secureStateProbe } from './probes.js';
import { startEmulator, stopChild, rssKiB, openFds, fdLimit, tempDir, memoryBackedBase, type Emulator } from './processes.js';
import { figure, type Figure } from './stats.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export interface FleetEnrolledResult {
  nics: number;
  addressing: string;
  eepromStore: string;
  enrolment: string;
  enrolMs: Figure;
  enrolled: number;
  hostAgents: number;
  emfile: number;
  fds: number;
  fdLimit: { soft: number; hard: number };
  startMs: Figure;
  rssPerNic: Figure;
  rssTotal: Figure;
  baselineRss: Figure;
  restartWall: Figure;
  restartStartMs: Figure;
  /** Spawn to every NIC booted (lazy boot), restart and first start. */
  restartBootedMs: Figure;
  startBootedMs: Figure;
  /** NICs not yet booted at the restart's ready line. */
  restartBootingAtReady: number;
  restartEnrolled: number;
  sample: { asked: number; answered: number; failures: string[] };
}

/** Each NIC's SA, derived from a per-run seed and its index, so the bench need not keep 100,000 of them. */
export function saFor(seed: Buffer, i: number): SaPair {
  const h = (tag: string) => createHash('sha256').update(seed).update(`${tag}:${i}`).digest();
  const spi = (tag: string) => 0x100 + (h(tag).readUInt32BE(0) % 0xfffffe00);
  const dir = (tag: string) => ({ spi: spi(`${tag}-spi`), encKey: new Uint8Array(h(`${tag}-key`).subarray(0, 20)), ahSpi: 0, ahKey: new Uint8Array(0) });
  return { generation: 0, transform: 'aes-gcm-16', esn: false, policy: 'esp', toNic: dir('to'), fromNic: dir('from'), origin: 'manual' };
}

/**
 * Write NIC `a`'s EEPROM file as a fresh NIC would format it, then manual keying and the trust anchor (also the
 * station-cluster section's images); the SA's generation as the NIC numbered it.
 */
export function enrolImage(dir: string, a: NicAddress, sa: SaPair, psk: Uint8Array, now: number): number {
  const device = new MemoryEepromDevice(EEPROM_SIZE);
  const m = new NicMachine({
    id: a.id, address: a.address, ports: { clear: a.clearPort, secure: a.securePort, ike: a.ikePort },
    openDevice: (first) => ({ device, fresh: first }), deviceName: a.id,
    initialConfig: { securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'none', key: new Uint8Array(32) }, clusterPolicy: '' },
    initialHostState: 'up', bootDelayMs: 0, random: pooledRandom,
  });
  m.powerOn(now);
  if (m.runState !== 'running') throw new Error(`${a.id}: the firmware did not boot (${m.error})`);
  const { generation } = m.installSa(sa, now);
  m.setTrustAnchor(psk, now);
  writeFileSync(join(dir, `${a.id}.eeprom`), device.image, { mode: 0o600 });
  return generation;
}

function addressing(salt: number): string[] {
  // 127.101.0.0/16 is this section's (a /16 holds 65,534 usable addresses; a larger fleet runs on into 127.102...).
  if (isRoot) return ['--first-address', `127.101.${salt % 4}.1`];
  return ['--port-base', '1100'];
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the emulator's /v1/health says every NIC has booted (lazy boot); ms from the emulator's spawn. */
async function allBooted(emu: Emulator, timeoutMs: number): Promise<number> {
  const readyAt = performance.now();
  const end = readyAt + timeoutMs;
  for (;;) {
    const h = (await (await fetch(`http://${emu.ready.control}/v1/health`, { signal: AbortSignal.timeout(60_000) })).json()) as { booting?: number };
    if (!h.booting) return emu.readyMs + (performance.now() - readyAt);
    if (performance.now() > end) throw new Error(`${h.booting} NICs still not booted ${timeoutMs} ms after the ready line`);
    await settle(100);
  }
}

/** startEmulator, refusing a refusal (with --json an error is the one line where the ready line would be). */
async function started(args: string[], timeoutMs: number): Promise<Emulator> {
  const emu = await startEmulator(args, timeoutMs, { waitBooted: false });
  if (emu.ready.ready !== true) {
    await stopChild(emu.child);
    throw new Error(`nic-emulator refused to start: ${JSON.stringify(emu.ready)}`);
  }
  return emu;
}

/** A value of the emulator's /metrics (one series without labels, or the sum of a family's series). */
async function metric(control: string, name: string): Promise<number> {
  const text = await (await fetch(`http://${control}/metrics`, { signal: AbortSignal.timeout(60_000) })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Secure System State to each NIC of `sample`: sync (its own epoch), one ESP request, the answer opened. */
async function secureStates(addrs: NicAddress[], sample: number[], seed: Buffer): Promise<{ answered: number; failures: string[] }> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const local = { address: '127.0.0.1', port: s.address().port };
  let answered = 0;
  const failures: string[] = [];
  try {
    for (const i of sample) {
      const a = addrs[i];
      const sa = { ...saFor(seed, a.index), generation: 1 };
      const nic = { address: a.address, port: a.securePort };
      try {
        const synced = await syncWithNic(sa, nic, { timeoutMs: 5000 });
        const probe = secureStateProbe(sa, local, nic, synced);
        const tag = i & 255;
        const got = await new Promise<boolean>((resolve) => {
          const t = setTimeout(() => done(false), 3000);
          const onMsg = (m: Buffer) => {
            if (probe.answerTag(new Uint8Array(m.buffer, m.byteOffset, m.byteLength)) === tag) done(true);
          };
          const done = (ok: boolean) => {
            clearTimeout(t);
            s.removeListener('message', onMsg);
            resolve(ok);
          };
          s.on('message', onMsg);
          s.send(probe.request(tag), nic.port, nic.address);
        });
        if (got) answered++;
        else failures.push(`${a.id}: no System State Response in 3 s`);
      } catch (e) {
        failures.push(`${a.id}: ${(e as Error).message}`);
      }
    }
  } finally {
    s.close();
  }
  return { answered, failures: failures.slice(0, 10) };
}

export async function measureFleetEnrolled(n: number, log: (s: string) => void): Promise<FleetEnrolledResult> {
  const store = memoryBackedBase();
  const seed = randomBytes(32);
  const psk = new Uint8Array(randomBytes(32));
  const salt = process.pid;
  const addrArgs = addressing(salt);
  const firstAddress = addrArgs[0] === '--first-address' ? addrArgs[1] : '127.0.0.1';
  const portBase = addrArgs[0] === '--port-base' ? Number(addrArgs[1]) : null;
  const addrs = assignAddresses({ nics: n, firstAddress, portBase });
  const baseAddrs = assignAddresses({ nics: 1, firstAddress, portBase });

  const baseDir = tempDir('enrolled-1', store.dir);
  const dir = tempDir(`enrolled-${n}`, store.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const now = Date.now();
  enrolImage(baseDir, baseAddrs[0], saFor(seed, 1), psk, now);
  log(`  enrolling ${n} EEPROM images in-process (installSa + setTrustAnchor on each NIC's firmware)`);
  const t0 = performance.now();
  for (const a of addrs) enrolImage(dir, a, saFor(seed, a.index), psk, now);
  const enrolMs = performance.now() - t0;

  log('  baseline: 1 enrolled NIC');
  const base = await started(['--nics', '1', '--data-dir', baseDir, ...addrArgs], 30_000);
  await settle(700);
  const baseRss = rssKiB(base.ready.pid);
  await stopChild(base.child);

  log(`  ${n} enrolled NICs: start`);
  let emu: Emulator | null = await started(['--nics', String(n), '--data-dir', dir, ...addrArgs], 120_000);
  try {
    const startBooted = await allBooted(emu, 120_000);
    await settle(1500);
    const rss = rssKiB(emu.ready.pid);
    const fds = openFds(emu.ready.pid);
    const enrolled = await metric(emu.ready.control, 'lifeline_nics_with_sa');
    const hostAgents = await metric(emu.ready.control, 'lifeline_nic_host_agents');
    const startMs = emu.ready.startMs;
    const emfile1 = (emu.stderr().match(/EMFILE/g) ?? []).length;
    await stopChild(emu.child, 30_000);
    emu = null;

    log(`  ${n} enrolled NICs: restart on the same data directory`);
    emu = await started(['--nics', String(n), '--data-dir', dir, ...addrArgs], 120_000);
    const restartBootingAtReady = (emu.ready as { booting?: number }).booting ?? 0;
    const sample = Array.from({ length: Math.min(100, n) }, () => Math.floor(Math.random() * n));
    log(`  secure state to ${sample.length} random NICs (at once, during the background boot of ${restartBootingAtReady})`);
    const states = await secureStates(addrs, sample, seed);
    const restartBooted = await allBooted(emu, 120_000);
    const restartEnrolled = await metric(emu.ready.control, 'lifeline_nics_with_sa');
    const emfile = emfile1 + (emu.stderr().match(/EMFILE/g) ?? []).length;
    const wl = `${n} enrolled NICs (SA + trust anchor written in-process by each NIC's firmware: installSa as 'sa manual' does, setTrustAnchor as 'enroll' does; not by a station) in one nic-emulator process, ${isRoot ? 'address-per-NIC, shared sockets' : 'port-per-NIC'}, hosts up, EEPROM files on ${store.kind}`;
    return {
      nics: n,
      addressing: isRoot ? 'address-per-NIC (shared sockets)' : 'port-per-NIC',
      eepromStore: store.kind,
      enrolment: 'in-process: each NIC\'s firmware on an in-memory EEPROM, installSa (manual keying) + setTrustAnchor, image written to its file',
      enrolMs: figure(enrolMs, 'ms', `bench process: ${n} EEPROM images formatted, keyed and written`),
      enrolled,
      hostAgents,
      emfile,
      fds,
      fdLimit: fdLimit(),
      startMs: figure(startMs, 'ms', `${wl}; first start on the enrolled images, emulator's startMs`),
      rssPerNic: figure((rss - baseRss) / (n - 1), 'KiB/NIC', `${wl}; (VmRSS(N) - VmRSS(1)) / (N - 1), idle (no packet since boot), 1.5 s after ready`),
      rssTotal: figure(rss / 1024, 'MiB', `${wl}; VmRSS`),
      baselineRss: figure(baseRss / 1024, 'MiB', '1 enrolled NIC, VmRSS after ready'),
      restartWall: figure(emu.readyMs, 'ms', `${wl}; restart on the same data directory: spawn to ready line`),
      restartStartMs: figure(emu.ready.startMs, 'ms', `${wl}; restart: emulator's startMs (fleet.start())`),
      restartBootedMs: figure(restartBooted, 'ms', `${wl}; restart: spawn to every NIC booted (/v1/health booting 0; the 100 secure states ran meanwhile)`),
      startBootedMs: figure(startBooted, 'ms', `${wl}; first start: spawn to every NIC booted`),
      restartBootingAtReady,
      restartEnrolled,
      sample: { asked: sample.length, ...states },
    };
  } finally {
    if (emu) await stopChild(emu.child, 30_000);
  }
}
