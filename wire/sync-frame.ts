/**
 * Authenticated resynchronisation between a station and a NIC (DESIGN §7 "restoring a backup", after RFC 6311's
 * replay-counter sync), carried like heartbeats (DESIGN §2.3) in frames that start with the reserved SPI
 * 0xFFFFFFFF: they never reach ESP decryption and use no ESP IV, so a side whose counters went back (a restored
 * EEPROM or store, a lost checkpoint) can run one before it sends anything under ESP.
 *
 *   station -> NIC  HELLO      { Ns }
 *   NIC -> station  CHALLENGE  { Ns, Nn, epoch counter, inbound high, outbound next }
 *   station -> NIC  SET        { Ns, Nn, minimum epoch, exclusive, P, S, queries[] }
 *   NIC -> station  DONE       { Ns, Nn, new epoch, outbound next, answers[] }
 *
 * The NIC issues a sync epoch (a u32 counter kept in its EEPROM, raised to at least the station's minimum: the
 * highest epoch the station's store has seen, so a restored EEPROM never issues one twice) and writes it before
 * it answers DONE. The station process that ran the sync owns that epoch: the NIC accepts ESP packets only under
 * live epochs (wire/sync-iv.ts puts the epoch in the IV), each with its own replay window, so everything captured
 * under an epoch that ended is dead, whatever the counters say. A few epochs are live at once (a station's daemon
 * and a CLI verb); an `exclusive` SET (a station that took the NIC over) ends every other. Nn is the NIC's fresh
 * random challenge: a recorded SET cannot be replayed into a later sync. A NIC that has not been synced since it
 * booted accepts no ESP packet and executes nothing; it may invite a sync with an unsolicited CHALLENGE (Ns zero).
 * The queries ask the NIC about commands the station logged but never saw acknowledged. A command's identity is the
 * epoch it was first sent under with its RMCP sequence, ASF tag and type; a query also names the epoch it was last
 * sent under. The NIC records the identity before it executes a command, and answers: executed; not executed (it
 * never will be under the epoch it was last sent under: the NIC cancels that, and takes the command, if it comes
 * again under the new epoch, as the same command); or unknown (no longer, or not yet, in the NIC's record).
 *
 * Frame (big-endian):
 *   0  0xFFFFFFFF | 4 SPI | 8 kind u8 | 9 version u8 (1) | 10 length u16 | 12 Ns (8) | 20 Nn (8) | 28 body | tag (16)
 *   SPI as for heartbeats: the receiver's SPI of that direction (station -> NIC: sa.toNic.spi; NIC -> station:
 *   sa.fromNic.spi), so both sides find the SA as they find it for ESP. A heartbeat is exactly 32 bytes; a sync
 *   frame is longer, which is how a receiver tells them apart.
 *   tag = HMAC-SHA-256 truncated to 128 bits over  label || every byte before the tag, under a key from HKDF-SHA-256
 *   (RFC 5869) of the SA's key material (as heartbeat keys, info "lifeline sync key station->nic" or "... nic->station").
 * Bodies:
 *   HELLO      (none)
 *   CHALLENGE  epoch u32 (highest issued) | flags u8 (bit 0: unsolicited, bit 1: no epoch live: not synced since
 *              boot) | inHigh u64 | outNext u64
 *   SET        minEpoch u32 | flags u8 (bit 0: exclusive) | P u64 | S u64 | n u8 | n x (epoch u32, first epoch u32,
 *              rmcpSeq u8, tag u8, type u8, 0 u8)
 *   DONE       epoch u32 | outNext u64 | n u8 | n x answer u8 (0 not executed, 1 executed, 2 unknown)
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, putU16, putU32, putU64, u16, u32, u64 } from '../common/bytes.js';
import { ProtocolError, UsageError } from '../common/errors.js';
import { HEARTBEAT_SPI, type SaPair } from './sa.js';
import { HEARTBEAT_LENGTH } from './heartbeat-frame.js';

export const SYNC_VERSION = 1;
export const SYNC_NONCE_LENGTH = 8;
const TAG = 16;
const HEAD = 28;
/** Queries one SET may carry: a station has at most 16 commands in flight per NIC (mgmt-station/core/session.ts). */
export const SYNC_MAX_QUERIES = 32;
/** Bytes of one query in a SET. */
const QUERY = 12;

export type SyncKind = 'hello' | 'challenge' | 'set' | 'done';
const KIND_CODE: Record<SyncKind, number> = { hello: 0x11, challenge: 0x12, set: 0x13, done: 0x14 };
const KIND_OF = new Map(Object.entries(KIND_CODE).map(([k, v]) => [v, k as SyncKind]));

export type QueryAnswer = 'not-executed' | 'executed' | 'unknown';
const ANSWER_CODE: Record<QueryAnswer, number> = { 'not-executed': 0, executed: 1, unknown: 2 };
const ANSWERS: QueryAnswer[] = ['not-executed', 'executed', 'unknown'];

/** A command as it goes over the wire: the epoch of this transmission, its RMCP sequence, ASF tag and type. */
export interface CommandIdentity {
  epoch: number;
  rmcpSeq: number;
  tag: number;
  /** ASF message type code (0x10 reset, 0x11 power-up, 0x12 power-down, 0x13 power cycle). */
  type: number;
}

/** What a SET asks about: a command by its latest transmission (`epoch`) and the epoch it was first sent under. */
export interface CommandQuery extends CommandIdentity {
  firstEpoch: number;
}

interface Nonces { ns: Uint8Array; nn: Uint8Array }
export type SyncFrame =
  | ({ kind: 'hello' } & Nonces)
  | ({ kind: 'challenge'; epoch: number; unsolicited: boolean; unsynced: boolean; inHigh: bigint; outNext: bigint } & Nonces)
  | ({ kind: 'set'; minEpoch: number; exclusive: boolean; p: bigint; s: bigint; queries: CommandQuery[] } & Nonces)
  | ({ kind: 'done'; epoch: number; outNext: bigint; answers: QueryAnswer[] } & Nonces);

/** Which way a frame goes: HELLO and SET go to the NIC, CHALLENGE and DONE to the station. */
export function toNic(kind: SyncKind): boolean {
  return kind === 'hello' || kind === 'set';
}

const utf8 = new TextEncoder();
const INFO_TO_NIC = utf8.encode('lifeline sync key station->nic');
const INFO_FROM_NIC = utf8.encode('lifeline sync key nic->station');
const LABEL: Record<SyncKind, Uint8Array> = {
  hello: utf8.encode('lifeline sync hello'),
  challenge: utf8.encode('lifeline sync challenge'),
  set: utf8.encode('lifeline sync set'),
  done: utf8.encode('lifeline sync done'),
};

export interface SyncKeys { toNic: Uint8Array; fromNic: Uint8Array }

/**
 * Derived once per SA pair object and kept beside it; a copy of the same SA (a store read gives a fresh object each
 * time) finds them by the key material itself (a bounded map: a few SAs are live at once).
 */
const keyCache = new WeakMap<SaPair, SyncKeys>();
const byMaterial = new Map<string, SyncKeys>();
const BY_MATERIAL_MAX = 256;

export function syncKeys(sa: SaPair): SyncKeys {
  let k = keyCache.get(sa);
  if (!k) {
    const ikm = concat(sa.toNic.encKey, sa.fromNic.encKey, sa.toNic.ahKey, sa.fromNic.ahKey);
    const salt = new Uint8Array(8);
    putU32(salt, 0, sa.fromNic.spi);
    putU32(salt, 4, sa.toNic.spi);
    // The keys are a function of (ikm, salt) alone.
    const material = `${Buffer.from(ikm.buffer, ikm.byteOffset, ikm.length).toString('hex')},${sa.fromNic.spi},${sa.toNic.spi}`;
    k = byMaterial.get(material);
    if (!k) {
      k = { toNic: hkdf(sha256, ikm, salt, INFO_TO_NIC, 32), fromNic: hkdf(sha256, ikm, salt, INFO_FROM_NIC, 32) };
      if (byMaterial.size >= BY_MATERIAL_MAX) byMaterial.clear();
      byMaterial.set(material, k);
    }
    keyCache.set(sa, k);
  }
  return k;
}

function tagOf(key: Uint8Array, kind: SyncKind, covered: Uint8Array): Uint8Array {
  const mac = createHmac('sha256', key).update(LABEL[kind]).update(covered).digest();
  return new Uint8Array(mac.buffer, mac.byteOffset, TAG);
}

function assertNonce(n: Uint8Array, what: string): void {
  if (!(n instanceof Uint8Array) || n.length !== SYNC_NONCE_LENGTH) throw new UsageError('E_USAGE', `sync ${what} must be ${SYNC_NONCE_LENGTH} bytes`);
}

function assertU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new UsageError('E_USAGE', `sync ${what} must be a u32, got ${v}`);
}

function assertU64(v: bigint, what: string): void {
  if (typeof v !== 'bigint' || v < 0n || v >= 1n << 64n) throw new UsageError('E_USAGE', `sync ${what} must be a u64 bigint, got ${String(v)}`);
}

function body(f: SyncFrame): Uint8Array {
  switch (f.kind) {
    case 'hello':
      return new Uint8Array(0);
    case 'challenge': {
      assertU32(f.epoch, 'epoch');
      assertU64(f.inHigh, 'inHigh');
      assertU64(f.outNext, 'outNext');
      const b = new Uint8Array(21);
      putU32(b, 0, f.epoch);
      b[4] = (f.unsolicited ? 1 : 0) | (f.unsynced ? 2 : 0);
      putU64(b, 5, f.inHigh);
      putU64(b, 13, f.outNext);
      return b;
    }
    case 'set': {
      assertU32(f.minEpoch, 'minEpoch');
      assertU64(f.p, 'P');
      assertU64(f.s, 'S');
      if (!Array.isArray(f.queries) || f.queries.length > SYNC_MAX_QUERIES) throw new UsageError('E_USAGE', `a SET carries at most ${SYNC_MAX_QUERIES} queries`);
      const b = new Uint8Array(22 + QUERY * f.queries.length);
      putU32(b, 0, f.minEpoch);
      b[4] = f.exclusive ? 1 : 0;
      putU64(b, 5, f.p);
      putU64(b, 13, f.s);
      b[21] = f.queries.length;
      f.queries.forEach((q, i) => {
        assertU32(q.epoch, 'query epoch');
        assertU32(q.firstEpoch, 'query first epoch');
        for (const [v, w] of [[q.rmcpSeq, 'rmcpSeq'], [q.tag, 'tag'], [q.type, 'type']] as const) {
          if (!Number.isInteger(v) || v < 0 || v > 255) throw new UsageError('E_USAGE', `sync query ${w} must be a byte, got ${v}`);
        }
        const o = 22 + QUERY * i;
        putU32(b, o, q.epoch);
        putU32(b, o + 4, q.firstEpoch);
        b[o + 8] = q.rmcpSeq;
        b[o + 9] = q.tag;
        b[o + 10] = q.type;
      });
      return b;
    }
    case 'done': {
      assertU32(f.epoch, 'epoch');
      assertU64(f.outNext, 'outNext');
      if (!Array.isArray(f.answers) || f.answers.length > SYNC_MAX_QUERIES) throw new UsageError('E_USAGE', `a DONE carries at most ${SYNC_MAX_QUERIES} answers`);
      const b = new Uint8Array(13 + f.answers.length);
      putU32(b, 0, f.epoch);
      putU64(b, 4, f.outNext);
      b[12] = f.answers.length;
      f.answers.forEach((a, i) => (b[13 + i] = ANSWER_CODE[a]));
      return b;
    }
  }
}

/** Encode and authenticate `f` under `sa` (the keys of its direction, the SPI its receiver uses). */
export function encodeSync(sa: SaPair, f: SyncFrame): Uint8Array {
  assertNonce(f.ns, 'Ns');
  assertNonce(f.nn, 'Nn');
  const b = body(f);
  const out = new Uint8Array(HEAD + b.length + TAG);
  const down = toNic(f.kind);
  putU32(out, 0, HEARTBEAT_SPI);
  putU32(out, 4, down ? sa.toNic.spi : sa.fromNic.spi);
  out[8] = KIND_CODE[f.kind];
  out[9] = SYNC_VERSION;
  putU16(out, 10, out.length);
  out.set(f.ns, 12);
  out.set(f.nn, 20);
  out.set(b, HEAD);
  const keys = syncKeys(sa);
  out.set(tagOf(down ? keys.toNic : keys.fromNic, f.kind, out.subarray(0, out.length - TAG)), out.length - TAG);
  return out;
}

/** Is this datagram a sync frame (reserved SPI, longer than a heartbeat)? */
export function isSyncFrame(bytes: Uint8Array): boolean {
  return bytes.length > HEARTBEAT_LENGTH && u32(bytes, 0) === HEARTBEAT_SPI;
}

/** The SPI a sync frame names (the receiver looks its SA up by it); throws E_SHORT. */
export function syncFrameSpi(bytes: Uint8Array): number {
  if (bytes.length < HEAD + TAG) throw new ProtocolError('E_SHORT', `sync frame of ${bytes.length} bytes; dropped`);
  return u32(bytes, 4);
}

/**
 * Verify and decode a sync frame received under `sa`. `expectToNic`: the receiver is the NIC (it accepts HELLO and
 * SET only) or the station (CHALLENGE and DONE only). Throws ProtocolError (E_SHORT, E_LENGTH, E_VERSION, E_TYPE,
 * E_SPI, E_ICV); the tag is checked before any field is believed.
 */
export function decodeSync(bytes: Uint8Array, sa: SaPair, expectToNic: boolean): SyncFrame {
  if (bytes.length < HEAD + TAG) throw new ProtocolError('E_SHORT', `sync frame of ${bytes.length} bytes, need at least ${HEAD + TAG}; dropped`);
  if (u32(bytes, 0) !== HEARTBEAT_SPI) throw new ProtocolError('E_SPI', 'a sync frame starts with SPI 0xffffffff; dropped');
  if (u16(bytes, 10) !== bytes.length) throw new ProtocolError('E_LENGTH', `sync frame says ${u16(bytes, 10)} bytes, has ${bytes.length}; dropped`);
  if (bytes[9] !== SYNC_VERSION) throw new ProtocolError('E_VERSION', `sync frame version ${bytes[9]}, this end speaks ${SYNC_VERSION}; dropped`);
  const kind = KIND_OF.get(bytes[8]);
  if (!kind || toNic(kind) !== expectToNic) throw new ProtocolError('E_TYPE', `sync frame kind 0x${bytes[8].toString(16)} is not one this end receives; dropped`);
  const spi = u32(bytes, 4);
  const want = expectToNic ? sa.toNic.spi : sa.fromNic.spi;
  if (spi !== want) throw new ProtocolError('E_SPI', `sync frame names SPI 0x${spi.toString(16)}, its SA has 0x${want.toString(16)}; dropped`);
  const keys = syncKeys(sa);
  const tag = tagOf(expectToNic ? keys.toNic : keys.fromNic, kind, bytes.subarray(0, bytes.length - TAG));
  if (!timingSafeEqual(tag, bytes.subarray(bytes.length - TAG))) throw new ProtocolError('E_ICV', `sync ${kind} has a bad tag (wrong SA or forged); dropped`);
  const ns = bytes.slice(12, 20);
  const nn = bytes.slice(20, 28);
  const b = bytes.subarray(HEAD, bytes.length - TAG);
  const need = (n: number) => {
    if (b.length !== n) throw new ProtocolError('E_LENGTH', `sync ${kind} body of ${b.length} bytes, expected ${n}; dropped`);
  };
  switch (kind) {
    case 'hello':
      need(0);
      return { kind, ns, nn };
    case 'challenge':
      need(21);
      if (b[4] > 3) throw new ProtocolError('E_RESERVED', `sync challenge flags 0x${b[4].toString(16)} has reserved bits set; dropped`);
      return { kind, ns, nn, epoch: u32(b, 0), unsolicited: (b[4] & 1) !== 0, unsynced: (b[4] & 2) !== 0, inHigh: u64(b, 5), outNext: u64(b, 13) };
    case 'set': {
      if (b.length < 22) need(22);
      const n = b[21];
      if (n > SYNC_MAX_QUERIES) throw new ProtocolError('E_LENGTH', `sync set carries ${n} queries, at most ${SYNC_MAX_QUERIES}; dropped`);
      need(22 + QUERY * n);
      if (b[4] > 1) throw new ProtocolError('E_RESERVED', `sync set flags 0x${b[4].toString(16)} has reserved bits set; dropped`);
      const queries: CommandQuery[] = [];
      for (let i = 0; i < n; i++) {
        const o = 22 + QUERY * i;
        if (b[o + 11] !== 0) throw new ProtocolError('E_RESERVED', 'a sync query has its reserved byte set; dropped');
        queries.push({ epoch: u32(b, o), firstEpoch: u32(b, o + 4), rmcpSeq: b[o + 8], tag: b[o + 9], type: b[o + 10] });
      }
      return { kind, ns, nn, minEpoch: u32(b, 0), exclusive: b[4] === 1, p: u64(b, 5), s: u64(b, 13), queries };
    }
    case 'done': {
      if (b.length < 13) need(13);
      const n = b[12];
      need(13 + n);
      const answers: QueryAnswer[] = [];
      for (let i = 0; i < n; i++) {
        const a = ANSWERS[b[13 + i]];
        if (!a) throw new ProtocolError('E_LENGTH', `sync done answer ${b[13 + i]} is not 0, 1 or 2; dropped`);
        answers.push(a);
      }
      return { kind, ns, nn, epoch: u32(b, 0), outNext: u64(b, 4), answers };
    }
  }
}

export const ZERO_NONCE = new Uint8Array(SYNC_NONCE_LENGTH);
