/**
 * In-process measurements of the NIC firmware, no sockets: the cost of one secure packet, and the EEPROM
 * wear of secure traffic and of SA refreshes (DESIGN §2.6, §3), on a memory EEPROM (24C256 image).
 *
 * Cost per secure packet = NicFirmware.receiveSecure() of a System State Request sealed by the station
 * beforehand: SPI lookup, replay check, AEAD open, inner UDP/RMCP/ASF decode, the SA database's inbound
 * bookkeeping, and the seal of the System State Response (RFC 4303 §3.4 order, firmware/secure-channel.ts),
 * with NicFirmware.prepareNext() between packets as the emulator runs it, and without.
 */
import { MemoryEepromDevice } from '../firmware/eeprom-device.js';
import { EepromImage, EEPROM_SIZE, type EepromRegion } from '../firmware/eeprom-image.js';
import { SaDatabase } from '../firmware/sa-database.js';
import { SecureChannel } from '../firmware/secure-channel.js';
import { NicFirmware } from '../firmware/nic-firmware.js';
import { SaEndpoint } from '../wire/sa-endpoint.js';
import { encodeInnerUdp } from '../wire/esp.js';
import { RMCP_PORT } from '../wire/rmcp.js';
import type { SaPair, SecurityPolicy, EspTransform } from '../wire/sa.js';
import { randomSaPair } from './probes.js';
import { createAead, type AeadImpl } from '../wire/aead.js';
import { figure, percentile, type Figure } from './stats.js';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import type { KeyMemory } from './key-memory.js';

const NIC = { address: '127.0.0.1', port: 664 };
const STATION = { address: '127.0.0.1', port: 40664 };

interface Rig { image: EepromImage; db: SaDatabase; fw: NicFirmware; sa: SaPair; station: SaEndpoint }

function rig(policy: SecurityPolicy, transform: EspTransform): Rig {
  const image = EepromImage.format(new MemoryEepromDevice(EEPROM_SIZE), 'bench-nic', {
    securityPolicy: policy, clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'none', key: new Uint8Array(32) }, clusterPolicy: '',
  });
  const db = new SaDatabase(image);
  const channel = new SecureChannel(db, NIC);
  const fw = new NicFirmware(channel, () => ({ clearManagement: false, allowedClearCommands: 0 }), { firstEpoch: (id) => id.epoch, executed: () => false, cancelled: () => false });
  fw.hostState = 'up';
  const sa = install(db, randomSaPair(policy, transform));
  // Sync epoch 0 live, as a SET makes it: the bench station's SaEndpoint sends its sequence number as the IV, whose
  // epoch half is 0 (wire/sync-iv.ts).
  channel.addEpoch(0, sa.generation, 0n, 0, true);
  return { image, db, fw, sa, station: new SaEndpoint(sa, 'station', { outStart: 1n, inFloor: 0n }) };
}

/** Manual keying as the host driver does it: write pending, commit (nic-emulator/nic-node.ts installSa). */
function install(db: SaDatabase, sa: SaPair): SaPair {
  const keyed = { ...sa, generation: db.nextGeneration() };
  db.writePending(keyed);
  db.commitPending();
  return keyed;
}

const ahOut = { srcAddr: STATION.address, srcPort: STATION.port, dstAddr: NIC.address, dstPort: NIC.port };
const requests = Array.from({ length: 256 }, (_, tag) =>
  encodeInnerUdp(STATION.port, RMCP_PORT, Uint8Array.of(0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x82, tag, 0x00, 0x00)));

/** Requests sealed by the station, as Buffers: the emulator hands the firmware what dgram received. */
function sealBatch(r: Rig, n: number): Uint8Array[] {
  const out = new Array<Uint8Array>(n);
  for (let i = 0; i < n; i++) out[i] = Buffer.from(r.station.seal(requests[i & 0xff], ahOut));
  return out;
}

/**
 * How feed() runs the firmware: 'plain' = receiveSecure only; 'prepared' = receiveSecure, then prepareNext()
 * as the emulator does once the answer is sent (nic-emulator/nic-node.ts).
 */
type FeedMode = 'plain' | 'prepared';

/**
 * Feeds a batch to the firmware. Returns µs per packet for the whole loop (`total`) and, in 'prepared' mode,
 * for the receiveSecure() calls alone (`answer`: request in to answer sealed, the part a station waits for,
 * timed per call, so it includes a performance.now() call). Every answer must be one sealed datagram.
 */
function feed(r: Rig, batch: Uint8Array[], mode: FeedMode): { total: number; answer: number } {
  let sent = 0;
  let inAnswer = 0;
  const t0 = performance.now();
  for (let i = 0; i < batch.length; i++) {
    if (mode === 'plain') {
      const fx = r.fw.receiveSecure(STATION, batch[i]);
      if (fx.length === 2 && fx[1].kind === 'send') sent++;
    } else {
      const a = performance.now();
      const fx = r.fw.receiveSecure(STATION, batch[i]);
      inAnswer += performance.now() - a;
      if (fx.length === 2 && fx[1].kind === 'send') sent++;
      r.fw.prepareNext();
    }
  }
  const total = ((performance.now() - t0) * 1000) / batch.length;
  if (sent !== batch.length) throw new Error(`firmware answered ${sent} of ${batch.length} secure requests; counters ${JSON.stringify(r.fw.counters)}`);
  return { total, answer: mode === 'plain' ? total : (inAnswer * 1000) / batch.length };
}

export interface FirmwareCost {
  /** request in -> answer sealed, with the preparation the emulator does between packets (its critical path) */
  perPacket: Figure;
  p90Batch: Figure;
  /** the same plus prepareNext(): all the CPU a secure request costs the firmware */
  perPacketWithPreparation: Figure;
  /** receiveSecure without any preparation */
  perPacketUnprepared: Figure;
  byVariant: Record<string, Figure>;
  aead: Record<string, Figure>;
  keyMemory: KeyMemory;
}

/** µs per secure request handled (median of batches), for the default SA and two variants. */
export function firmwareCost(opts: { batches: number; batchSize: number }): FirmwareCost {
  const half = Math.max(3, Math.floor(opts.batches / 2));
  const workloads: { policy: SecurityPolicy; transform: EspTransform; mode: FeedMode; batches: number }[] = [
    { policy: 'esp', transform: 'aes-gcm-16', mode: 'prepared', batches: opts.batches },
    { policy: 'esp', transform: 'aes-gcm-16', mode: 'plain', batches: opts.batches },
    { policy: 'esp+ah', transform: 'aes-gcm-16', mode: 'prepared', batches: half },
    { policy: 'esp', transform: 'chacha20-poly1305', mode: 'prepared', batches: half },
  ];
  const configs = workloads.map((c) => {
    const r = rig(c.policy, c.transform);
    feed(r, sealBatch(r, 2000), c.mode); // warm-up: JIT, first-packet checkpoint
    return { ...c, r, per: [] as { total: number; answer: number }[] };
  });
  // Batches interleaved across the four, as the network rounds are: a slow second of the shared machine then
  // costs each of them a batch, instead of deciding one figure (the prepared/unprepared comparison above all).
  for (let b = 0; b < opts.batches; b++) {
    for (const c of configs) if (b < c.batches) c.per.push(feed(c.r, sealBatch(c.r, opts.batchSize), c.mode));
  }
  const [main, plain] = [configs[0].per, configs[1].per];
  const wl = (p: string, t: string, b: number, what: string) =>
    `NicFirmware.receiveSecure of a sealed System State Request (${p}, ${t}, ESN off, a Buffer as dgram gives it) incl. seal of the answer${what}; median of ${b} batches x ${opts.batchSize} (batches interleaved with the other firmware workloads), in-process, memory EEPROM`;
  const byVariant: Record<string, Figure> = {};
  for (const c of configs.slice(2)) {
    byVariant[`${c.policy}/${c.transform}`] = figure(percentile(c.per.map((x) => x.answer), 50), 'µs/packet', wl(c.policy, c.transform, c.batches, ', prepareNext() between packets, receiveSecure timed per call'));
  }
  const answers = main.map((x) => x.answer);
  return {
    perPacket: figure(percentile(answers, 50), 'µs/packet', wl('esp', 'aes-gcm-16', opts.batches, ', prepareNext() between packets as the emulator does, receiveSecure timed per call')),
    p90Batch: figure(percentile(answers, 90), 'µs/packet', 'the same, 90th percentile of the batch means'),
    perPacketWithPreparation: figure(percentile(main.map((x) => x.total), 50), 'µs/packet', wl('esp', 'aes-gcm-16', opts.batches, ' plus prepareNext(): all the firmware CPU per request')),
    perPacketUnprepared: figure(percentile(plain.map((x) => x.total), 50), 'µs/packet', wl('esp', 'aes-gcm-16', opts.batches, ', without prepareNext()')),
    byVariant,
    aead: aeadCost(opts.batchSize),
    keyMemory: keyMemory(),
  };
}

/**
 * The AEAD choice of wire/aead.ts, measured: µs per seal + open of a 48-byte payload with an 8-byte AAD,
 * for each transform and implementation (median of 5 batches of `n`).
 */
function aeadCost(n: number): Record<string, Figure> {
  const nonce = new Uint8Array(12);
  const aad = new Uint8Array(8);
  const plain = new Uint8Array(48);
  const cases: [string, EspTransform, number][] = [['aes-128-gcm', 'aes-gcm-16', 16], ['aes-256-gcm', 'aes-gcm-16', 32], ['chacha20-poly1305', 'chacha20-poly1305', 32]];
  const runs: { key: string; what: string; a: ReturnType<typeof createAead>; per: number[] }[] = [];
  for (const [name, transform, keyLength] of cases) {
    // ChaCha20-Poly1305 has no 'keyed' implementation (createAead gives node:crypto's for it).
    const impls: AeadImpl[] = transform === 'aes-gcm-16' ? ['keyed', 'keyed-small', 'node', 'noble'] : ['node', 'noble'];
    for (const impl of impls) {
      const a = createAead(transform, new Uint8Array(keyLength).fill(7), impl);
      runs.push({ key: `${name}/${impl}`, what: AEAD_IMPL_NAMES[impl], a, per: [] });
    }
  }
  // Batches interleaved across the implementations, as the network rounds are: a slow second of the shared
  // machine then costs every implementation a batch, instead of deciding one implementation's figure.
  for (let b = 0; b < 6; b++) {
    for (const r of runs) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) r.a.open(nonce, aad, r.a.seal(nonce, aad, plain));
      if (b > 0) r.per.push(((performance.now() - t0) * 1000) / n); // batch 0 warms up the JIT
    }
  }
  const out: Record<string, Figure> = {};
  for (const r of runs) out[r.key] = figure(percentile(r.per, 50), 'µs/seal+open', `48-byte payload, 8-byte AAD, ${r.what}; median of 5 batches x ${n}, batches interleaved across implementations`);
  return out;
}

/** bench/key-memory.ts in a fresh process (why there: see that file). */
export function keyMemory(): KeyMemory {
  const r = spawnSync(process.execPath, ['--expose-gc', resolve(import.meta.dirname, 'key-memory.js')], { encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0) throw new Error(`key-memory exited with ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as KeyMemory;
}

const AEAD_IMPL_NAMES: Record<AeadImpl, string> = {
  keyed: 'per-key AES-GCM (wire/aes-gcm-keyed.ts)',
  'keyed-small': 'per-key AES-GCM with the 256-byte GHASH table (the station daemon\'s sessions)',
  node: 'node:crypto',
  noble: '@noble/ciphers',
};

export interface TrafficWear { perMillionPackets: Figure; perMillionRequests: Figure; pages: number; requests: number; checkpointBlock: number }

/**
 * EEPROM page writes while the NIC answers `requests` secure requests (each = 1 packet in + 1 out), after
 * the first packet under the SA (whose checkpoint belongs to the refresh, see refreshWear).
 */
export function trafficWear(requestsTotal: number): TrafficWear {
  const r = rig('esp', 'aes-gcm-16');
  feed(r, sealBatch(r, 1), 'prepared');
  const w0 = r.image.pageWrites.total;
  const batch = 10000;
  for (let done = 0; done < requestsTotal; done += batch) feed(r, sealBatch(r, Math.min(batch, requestsTotal - done)), 'prepared');
  const pages = r.image.pageWrites.total - w0;
  const packets = 2 * requestsTotal;
  const k = r.db.checkpointBlock;
  return {
    perMillionPackets: figure((pages * 1e6) / packets, 'page writes / 10^6 packets', `${requestsTotal} secure System State requests + ${requestsTotal} answers (${packets} ESP packets) through NicFirmware, checkpoint block K=${k}`),
    perMillionRequests: figure((pages * 1e6) / requestsTotal, 'page writes / 10^6 requests', 'the same, per request/answer pair'),
    pages,
    requests: requestsTotal,
    checkpointBlock: k,
  };
}

export interface RefreshWear { policy: SecurityPolicy; pages: Figure; byRegion: Partial<Record<EepromRegion, number>>; steps: { writePending: number; commit: number; firstPacket: number } }

/** Page writes of one SA refresh: writePending + commit + the first station packet under the new SA. */
export function refreshWear(policy: SecurityPolicy): RefreshWear {
  const r = rig(policy, 'aes-gcm-16');
  feed(r, sealBatch(r, 100), 'prepared'); // the old SA is in use, as it is when a refresh starts
  const total = () => r.image.pageWrites.total;
  const before = { ...r.image.pageWrites.byRegion };
  const t0 = total();
  const next = { ...randomSaPair(policy, 'aes-gcm-16'), generation: r.db.nextGeneration() };
  r.db.writePending(next);
  const t1 = total();
  r.db.commitPending(next.generation);
  const t2 = total();
  r.sa = next;
  r.station = new SaEndpoint(next, 'station', { outStart: 1n, inFloor: 0n });
  feed(r, sealBatch(r, 1), 'prepared');
  const t3 = total();
  const after = r.image.pageWrites.byRegion;
  const byRegion: Partial<Record<EepromRegion, number>> = {};
  for (const k of Object.keys(after) as EepromRegion[]) if (after[k] !== before[k]) byRegion[k] = after[k] - before[k];
  return {
    policy,
    pages: figure(t3 - t0, 'page writes / refresh', `SaDatabase.writePending + commitPending + first System State Request under the new SA (${policy}, aes-gcm-16), memory EEPROM`),
    byRegion,
    steps: { writePending: t1 - t0, commit: t2 - t1, firstPacket: t3 - t2 },
  };
}
