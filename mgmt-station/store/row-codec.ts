/**
 * Rows <-> records, with every key wrapped on the way in and unwrapped on the way out (key-wrap.ts).
 * Both drivers hand rows over with BLOBs as Buffers; PostgreSQL returns BIGINT as a string, hence the
 * Number() on every integer column.
 */
import type { SaDirection, SaPair } from '../../wire/sa.js';
import { ProtocolError } from '../../common/errors.js';
import type { KeyWrapper } from './key-wrap.js';
import type { SealedEntry, SealedHead } from './command-log.js';
import type { CommandOutcome, IkeSaSnapshot, Lease, NicRecord, SaState, StationRecord, StoredSa } from './store.js';
import type { Row, SqlValue } from './sql-driver.js';

const bytes = (v: unknown): Uint8Array => new Uint8Array(v as Buffer);
const num = (v: unknown): number => Number(v);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: unknown): Uint8Array => new Uint8Array(Buffer.from(String(s), 'hex'));

export const NIC_COLUMNS = 'id, address, secure_port, clear_port, ike_port, psk, enrolled_at, meta';

export function nicParams(n: NicRecord, w: KeyWrapper): SqlValue[] {
  return [
    n.id, n.address, n.securePort, n.clearPort, n.ikePort,
    w.wrap(n.psk, { nic: n.id, generation: 0, column: 'psk' }),
    n.enrolledAt, JSON.stringify(n.meta ?? {}),
  ];
}

/**
 * nicFromRow with the PSK unwrapped when `psk` is first read (then kept): a daemon's poll round lists every NIC of the
 * store and needs the PSK of the few it re-keys, and an unwrap (AES-GCM, 25 µs on the loaded machine) per NIC per
 * round was 2.5 s of CPU a round at 100,000 NICs. A PSK that does not unwrap is E_STORE at that read.
 */
export function nicFromRowLazyPsk(r: Row, w: KeyWrapper): NicRecord {
  const id = String(r.id);
  const blob = bytes(r.psk);
  let psk: Uint8Array | undefined;
  const n = {
    id,
    address: String(r.address),
    securePort: num(r.secure_port),
    clearPort: num(r.clear_port),
    ikePort: num(r.ike_port),
    enrolledAt: num(r.enrolled_at),
    meta: JSON.parse(String(r.meta)) as Record<string, unknown>,
  };
  return Object.defineProperty(n, 'psk', { enumerable: true, get: () => (psk ??= w.unwrap(blob, { nic: id, generation: 0, column: 'psk' })) }) as NicRecord;
}

export function nicFromRow(r: Row, w: KeyWrapper): NicRecord {
  const id = String(r.id);
  return {
    id,
    address: String(r.address),
    securePort: num(r.secure_port),
    clearPort: num(r.clear_port),
    ikePort: num(r.ike_port),
    psk: w.unwrap(bytes(r.psk), { nic: id, generation: 0, column: 'psk' }),
    enrolledAt: num(r.enrolled_at),
    meta: JSON.parse(String(r.meta)) as Record<string, unknown>,
  };
}

export const SA_COLUMNS =
  'nic, generation, state, transform, esn, policy, origin, ' +
  'to_nic_spi, to_nic_ah_spi, to_nic_enc_key, to_nic_ah_key, ' +
  'from_nic_spi, from_nic_ah_spi, from_nic_enc_key, from_nic_ah_key, ike, updated_at';

function directionParams(nic: string, gen: number, side: 'to_nic' | 'from_nic', d: SaDirection, w: KeyWrapper): SqlValue[] {
  return [
    d.spi,
    d.ahSpi,
    w.wrap(d.encKey, { nic, generation: gen, column: `${side}_enc_key` }),
    w.wrap(d.ahKey, { nic, generation: gen, column: `${side}_ah_key` }),
  ];
}

export function saParams(nic: string, pair: SaPair, state: SaState, ike: IkeSaSnapshot | null, now: number, w: KeyWrapper): SqlValue[] {
  const g = pair.generation;
  return [
    nic, g, state, pair.transform, pair.esn ? 1 : 0, pair.policy, pair.origin,
    ...directionParams(nic, g, 'to_nic', pair.toNic, w),
    ...directionParams(nic, g, 'from_nic', pair.fromNic, w),
    ike ? w.wrap(encodeIke(ike), { nic, generation: g, column: 'ike' }) : null,
    now,
  ];
}

function directionFromRow(r: Row, nic: string, gen: number, side: 'to_nic' | 'from_nic', w: KeyWrapper): SaDirection {
  return {
    spi: num(r[`${side}_spi`]),
    encKey: w.unwrap(bytes(r[`${side}_enc_key`]), { nic, generation: gen, column: `${side}_enc_key` }),
    ahSpi: num(r[`${side}_ah_spi`]),
    ahKey: w.unwrap(bytes(r[`${side}_ah_key`]), { nic, generation: gen, column: `${side}_ah_key` }),
  };
}

export function saFromRow(r: Row, w: KeyWrapper): StoredSa {
  const nic = String(r.nic);
  const generation = num(r.generation);
  const pair: SaPair = {
    generation,
    transform: String(r.transform) as SaPair['transform'],
    esn: num(r.esn) === 1,
    policy: String(r.policy) as SaPair['policy'],
    toNic: directionFromRow(r, nic, generation, 'to_nic', w),
    fromNic: directionFromRow(r, nic, generation, 'from_nic', w),
    origin: String(r.origin) as SaPair['origin'],
  };
  const ike = r.ike === null || r.ike === undefined ? null : decodeIke(w.unwrap(bytes(r.ike), { nic, generation, column: 'ike' }), nic, generation);
  return { nic, pair, state: String(r.state) as SaState, ike, updatedAt: num(r.updated_at) };
}

const IKE_KEYS = ['spiI', 'spiR', 'skD', 'skAi', 'skAr', 'skEi', 'skEr', 'skPi', 'skPr'] as const;

/** The IKE SA snapshot as JSON (keys in hex) - only ever stored wrapped. */
export function encodeIke(s: IkeSaSnapshot): Uint8Array {
  const o: Record<string, unknown> = { v: 1 };
  for (const k of IKE_KEYS) o[k] = hex(s[k]);
  o.initiator = s.initiator;
  o.nextRequestId = s.nextRequestId;
  o.nextPeerRequestId = s.nextPeerRequestId;
  o.transforms = s.transforms;
  return new Uint8Array(Buffer.from(JSON.stringify(o), 'utf8'));
}

export function decodeIke(b: Uint8Array, nic: string, generation: number): IkeSaSnapshot {
  try {
    const o = JSON.parse(Buffer.from(b).toString('utf8')) as Record<string, unknown>;
    if (o.v !== 1) throw new Error('version ' + String(o.v));
    const keys = Object.fromEntries(IKE_KEYS.map((k) => [k, unhex(o[k])])) as Record<(typeof IKE_KEYS)[number], Uint8Array>;
    return {
      ...keys,
      initiator: o.initiator === true,
      nextRequestId: num(o.nextRequestId),
      nextPeerRequestId: num(o.nextPeerRequestId),
      transforms: o.transforms as IkeSaSnapshot['transforms'],
    };
  } catch (e) {
    throw new ProtocolError('E_STORE', `IKE SA of ${nic} generation ${generation} is unreadable (${(e as Error).message})`);
  }
}

export function leaseFromRow(r: Row): Lease {
  return {
    nic: String(r.nic),
    owner: r.owner === null || r.owner === undefined ? null : String(r.owner),
    epoch: num(r.epoch),
    expiresAt: num(r.expires_at),
  };
}

export const LOG_COLUMNS = 'nic, idx, kind, ref, time, station, epoch, command, rmcp_seq, asf_tag, outcome, prev_hash, hash, mac, sync_epoch';
const LOG_COLUMN_COUNT = LOG_COLUMNS.split(',').length;
/** INSERT INTO command_log with every column. */
export const LOG_INSERT = `INSERT INTO command_log (${LOG_COLUMNS}) VALUES (${Array(LOG_COLUMN_COUNT).fill('?').join(', ')})`;

export function logParams(e: SealedEntry): SqlValue[] {
  return [
    e.nic, e.index, e.kind, e.ref, e.time, e.station, e.epoch, e.command,
    e.rmcpSeq, e.asfTag, e.outcome, e.prevHash, e.hash, e.mac, e.syncEpoch,
  ];
}

export function logFromRow(r: Row): SealedEntry {
  return {
    nic: String(r.nic),
    index: num(r.idx),
    kind: String(r.kind) as SealedEntry['kind'],
    ref: r.ref === null || r.ref === undefined ? null : num(r.ref),
    time: num(r.time),
    station: String(r.station),
    epoch: num(r.epoch),
    command: String(r.command),
    rmcpSeq: num(r.rmcp_seq),
    asfTag: num(r.asf_tag),
    outcome: String(r.outcome) as CommandOutcome,
    syncEpoch: r.sync_epoch === null || r.sync_epoch === undefined ? null : num(r.sync_epoch),
    prevHash: String(r.prev_hash),
    hash: String(r.hash),
    mac: String(r.mac),
  };
}

export function headFromRow(r: Row): SealedHead {
  return { index: num(r.idx), hash: String(r.hash), mac: String(r.mac) };
}

export function stationFromRow(r: Row): StationRecord {
  return { id: String(r.id), address: String(r.address), lastSeen: num(r.last_seen) };
}
