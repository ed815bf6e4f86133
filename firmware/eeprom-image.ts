/**
 * The EEPROM image of one management NIC (DESIGN §3): header, configuration, SA slots with their
 * directory, and sequence checkpoints, on an emulated 24C256 (32 KiB, 64-byte pages).
 *
 * Only parsed records and a little bookkeeping are kept in memory (the emulator runs 10,000 NICs in one
 * process); every change is written in place, one device write() per page, as the part takes it.
 *
 * Every record is a CRC-framed record of eeprom-record.ts (kind, version, length, generation, payload, CRC-32).
 *
 * Map (32 KiB = pages 0..511):
 *   page  0      0x0000  header      'LFLN' + frame kind 0x01: part size u32, page size u16,
 *                                    serial length u8, serial[16] (ASCII): the part's serial number
 *   pages 1-2    0x0040  directory   two ping-pong copies, kind 0x04: active gen u32, active slot u8,
 *                                    previous gen u32, previous slot u8, discarded-up-to gen u32
 *   pages 3-10   0x00C0  checkpoint  ring of 8 (generation g in page 3 + g mod 8), kind 0x05:
 *                                    last-authenticated gen u32, sync epoch u32 (bits 29-0: the highest
 *                                    issued, wire/sync-frame.ts), epoch floor u32 (bits 29-0: below it,
 *                                    another history's epochs), n x (SA gen u32, out reserved u64, in
 *                                    reserved u64), n from the length; the two epoch words' bits 31-30
 *                                    carry the live span (high bits in the sync epoch's: Checkpoint.liveSpan);
 *                                    images written before sync epochs have last-authenticated
 *                                    gen u32, count u8, count x entry (told apart by length mod 20)
 *   pages 11-34  0x02C0  SA slots    8 slots x 3 pages (192 bytes), kind 0x03, generation =
 *                                    SA generation: transform id u8, esn u8, policy u8, origin u8,
 *                                    toNic dir, fromNic dir, initial out reserved u64, initial in
 *                                    reserved u64, SA-region page writes u32. Under policy esp+ah each
 *                                    dir is spi u32, key length u8, key||salt[36], AH spi u32, AH key
 *                                    length u8, AH key[32] (180-byte payload, 3 pages exactly); under
 *                                    policy esp a dir has no AH fields (106-byte payload, 2 pages), so
 *                                    a default refresh writes one page less (DESIGN §3, EEPROM wear)
 *   pages 35-51  0x08C0  config A    kind 0x02, up to 17 pages: policy u8 (0 none, 1 esp, 2 esp+ah),
 *   pages 52-68  0x0D00  config B    flags u8 (bit 0 clear management), clear commands u8 (reset 1,
 *                                    power-up 2, power-down 4, power-cycle 8), trust kind u8 (0 none,
 *                                    1 psk, 2 ed25519), key length u8, key[32], config-region page writes
 *                                    u32, policy text length u16, policy text (UTF-8, <= 1024 bytes)
 *   pages 69-100 0x1140  executed    ring of 32, kind 0x06: the secure commands the NIC executed, each
 *                                    written before it acts (exec-record.ts)
 *   pages 101-108 0x1940  IPMI users  copy A, kind 0x07: lanplus on/off, users and privileges
 *   pages 109-116 0x1B40  IPMI users  copy B (ping-pong with A; eeprom-ipmi-users.ts)
 *   pages 117-118 0x1D40  identity    kind 0x08: id length u8, id (ASCII, <= 64): the NIC id the emulator gave
 *                                    it (e.g. lab-a-nic-1), written once at format, before the header.
 *                                    Images written before ids had prefixes have no identity record (pages
 *                                    erased): their serial is their id (load() reads them so, writes nothing)
 *   pages 119-511 0x1DC0  unused
 *
 * SA slots and directory (DESIGN §2.5): the directory names the active and previous SA by generation and
 * slot. A pending SA is not named: it is the newest valid SA record whose generation is above both the
 * active generation and the directory's discarded-up-to mark. So writing a pending SA costs its 2 pages
 * (3 under esp+ah), committing or discarding it one directory page; with the checkpoint page of the first
 * station packet under the new SA, a refresh is 4 page writes (5 under esp+ah). A pending SA goes into the
 * slot of the pending it replaces, else into a slot neither directory copy names, so a torn write can
 * only destroy a record nobody relies on.
 *
 * Checkpoints (DESIGN §2.6): per held SA, the sequence numbers reserved so far in each direction; an SA
 * not in the newest checkpoint uses the initial reservation in its own record. The checkpoint also keeps
 * the newest SA generation under which a station packet authenticated (make-before-break evidence).
 *
 * Write counters: each region's page-write count survives a restart without extra writes, carried by the
 * records themselves: config and SA records hold their region's running count, the directory and
 * checkpoint counts follow from their generations, and format() writes a fixed number of pages. (A write
 * torn by a power loss is counted only until the restart.)
 */
import { ERASED, type EepromDevice } from './eeprom-device.js';
import { ExecRecord } from './exec-record.js';
import { EepromIpmiUsers } from './eeprom-ipmi-users.js';
import { encodeIpmiUsers, type IpmiUsersConfig } from './ipmi/ipmi-users-record.js';
import {
  CRC, EEPROM_FORMAT_VERSION, EEPROM_PAGE, EEPROM_SIZE, FRAME, KIND, MAGIC, allBytes, corrupt, decodeRecord, encodeRecord, isBlank, newest,
  pageRange, writePages, type Decoded,
} from './eeprom-record.js';
import { ProtocolError, UsageError } from '../common/errors.js';
import { hex, putU16, putU32, putU64, u16, u32, u64 } from '../common/bytes.js';
import { ESP_TRANSFORM_ID, HEARTBEAT_SPI, type EspTransform, type SaDirection, type SaPair, type SecurityPolicy } from '../wire/sa.js';

export { EEPROM_SIZE, EEPROM_PAGE, EEPROM_FORMAT_VERSION };
export const SERIAL_MAX = 16;
/** The longest NIC id the identity record holds (the station store's ids are 1..64 characters too). */
export const NIC_ID_MAX = 64;
export const CLUSTER_POLICY_MAX = 1024;
export const SA_SLOTS = 8;
/** Clear RMCP commands a configuration may allow (DESIGN §2.1), as bits of `allowedClearCommands`. */
export const CLEAR_COMMAND_BITS = { reset: 1, 'power-up': 2, 'power-down': 4, 'power-cycle': 8 } as const;

export type EepromRegion = 'header' | 'config' | 'sa' | 'directory' | 'checkpoint';

export interface TrustAnchor {
  kind: 'none' | 'psk' | 'ed25519';
  /** psk: the pre-shared key (1-32 bytes); ed25519: the station's public key (32 bytes); none: ignored. */
  key: Uint8Array;
}

export interface NicConfig {
  securityPolicy: SecurityPolicy | 'none';
  /** The seed's cold-boot option: clear RMCP commands may be honoured at all (DESIGN §2.1). */
  clearManagement: boolean;
  /** Which clear commands, as CLEAR_COMMAND_BITS. */
  allowedClearCommands: number;
  trustAnchor: TrustAnchor;
  /** The station-cluster policy file (INI, DESIGN §5), heartbeat settings included. */
  clusterPolicy: string;
}

/** Sequence numbers reserved for one SA: nothing at or below them may be reused after a restart. */
export interface SeqCheckpoint {
  generation: number;
  outReserved: bigint;
  inReserved: bigint;
}

export interface Reservation {
  outReserved: bigint;
  inReserved: bigint;
}

// ---------------------------------------------------------------- layout

const HEADER_PAGE = 0;
const DIRECTORY_PAGES = [1, 2];
const CHECKPOINT_PAGE = 3;
const CHECKPOINT_RING = 8;
const SA_PAGE = 11;
const SA_RECORD_PAGES = 3;
const CONFIG_PAGES = [35, 52];
const CONFIG_RECORD_PAGES = 17;
const IDENTITY_PAGE = 117;
const IDENTITY_RECORD_PAGES = 2;
const NO_SLOT = 0xff;
const MAX_U32 = 0xffffffff;
const MAX_U64 = (1n << 64n) - 1n;
/** format() erases the first page of every record slot (stale records of an earlier image must not
 * come back) and then writes the header: these are the per-region page counts it leaves behind. */
const FORMAT_PAGES: Record<EepromRegion, number> = { header: 2, config: 2, sa: SA_SLOTS, directory: 2, checkpoint: CHECKPOINT_RING };

const saSlotName = (i: number): string => `SA slot ${i} (${pageRange(SA_PAGE + i * SA_RECORD_PAGES, SA_RECORD_PAGES)})`;
const configName = (i: number): string => `configuration copy ${'AB'[i]} (${pageRange(CONFIG_PAGES[i], CONFIG_RECORD_PAGES)})`;
const directoryName = (i: number): string => `SA directory copy ${'AB'[i]} (page ${DIRECTORY_PAGES[i]})`;
const checkpointName = (p: number): string => `sequence checkpoint (page ${p})`;
const IDENTITY_NAME = `the identity record (${pageRange(IDENTITY_PAGE, IDENTITY_RECORD_PAGES)})`;

// ---------------------------------------------------------------- identity

function encodeIdentity(nicId: string): Uint8Array {
  const p = new Uint8Array(1 + nicId.length);
  p[0] = nicId.length;
  p.set(utf8.encode(nicId), 1);
  return p;
}

function decodeIdentity(p: Uint8Array, bad: (detail: string) => ProtocolError): string {
  if (p.length < 2 || p.length !== 1 + p[0] || p[0] > NIC_ID_MAX) throw bad('the id length does not match the payload');
  const id = String.fromCharCode(...p.subarray(1));
  if (!/^[\x21-\x7e]+$/.test(id)) throw bad('the id is not printable ASCII');
  return id;
}

// ---------------------------------------------------------------- configuration

const POLICY_CODE = { none: 0, esp: 1, 'esp+ah': 2 } as const;
const TRUST_CODE = { none: 0, psk: 1, ed25519: 2 } as const;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

function usage(message: string): UsageError {
  return new UsageError('E_USAGE', message);
}

export function assertNicConfig(c: NicConfig): void {
  if (!(c.securityPolicy in POLICY_CODE)) throw usage(`securityPolicy must be none, esp or esp+ah, got ${String(c.securityPolicy)}`);
  if (typeof c.clearManagement !== 'boolean') throw usage('clearManagement must be a boolean');
  if (!Number.isInteger(c.allowedClearCommands) || c.allowedClearCommands < 0 || c.allowedClearCommands > 15) {
    throw usage(`allowedClearCommands must be a bitmask of reset=1, power-up=2, power-down=4, power-cycle=8, got ${c.allowedClearCommands}`);
  }
  const t = c.trustAnchor;
  if (!t || !(t.kind in TRUST_CODE) || !(t.key instanceof Uint8Array)) throw usage('trustAnchor must be { kind: none|psk|ed25519, key: Uint8Array }');
  if (t.kind === 'psk' && (t.key.length < 1 || t.key.length > 32)) throw usage(`a psk trust anchor is 1-32 bytes, got ${t.key.length}`);
  if (t.kind === 'ed25519' && t.key.length !== 32) throw usage(`an ed25519 trust anchor is a 32-byte public key, got ${t.key.length}`);
  if (typeof c.clusterPolicy !== 'string') throw usage('clusterPolicy must be a string');
  const n = utf8.encode(c.clusterPolicy).length;
  if (n > CLUSTER_POLICY_MAX) throw usage(`the cluster policy is ${n} bytes of UTF-8; the EEPROM holds at most ${CLUSTER_POLICY_MAX}`);
}

/** A private, frozen copy: the image hands it out without copying (it is read per clear packet). */
function cloneConfig(c: NicConfig): Readonly<NicConfig> {
  const key = c.trustAnchor.kind === 'none' ? new Uint8Array(32) : Uint8Array.from(c.trustAnchor.key);
  return freezeConfig({ ...c, trustAnchor: { kind: c.trustAnchor.kind, key } });
}

function freezeConfig(c: NicConfig): Readonly<NicConfig> {
  Object.freeze(c.trustAnchor);
  return Object.freeze(c);
}

function encodeConfig(c: NicConfig, pagesWritten: number): Uint8Array {
  const text = utf8.encode(c.clusterPolicy);
  const p = new Uint8Array(43 + text.length);
  p[0] = POLICY_CODE[c.securityPolicy];
  p[1] = c.clearManagement ? 1 : 0;
  p[2] = c.allowedClearCommands;
  p[3] = TRUST_CODE[c.trustAnchor.kind];
  const key = c.trustAnchor.kind === 'none' ? new Uint8Array(0) : c.trustAnchor.key;
  p[4] = key.length;
  p.set(key, 5);
  putU32(p, 37, pagesWritten);
  putU16(p, 41, text.length);
  p.set(text, 43);
  return p;
}

function decodeConfig(p: Uint8Array, bad: (detail: string) => ProtocolError): { config: NicConfig; pagesWritten: number } {
  if (p.length < 43 || p.length !== 43 + u16(p, 41)) throw bad('payload length does not match its policy text');
  const policy = (Object.keys(POLICY_CODE) as (keyof typeof POLICY_CODE)[]).find((k) => POLICY_CODE[k] === p[0]);
  const trust = (Object.keys(TRUST_CODE) as (keyof typeof TRUST_CODE)[]).find((k) => TRUST_CODE[k] === p[3]);
  if (!policy) throw bad(`security mode ${p[0]} is unknown`);
  if (!trust) throw bad(`trust anchor kind ${p[3]} is unknown`);
  if (p[1] > 1 || p[2] > 15 || p[4] > 32) throw bad('flag, clear-command or key-length field out of range');
  let clusterPolicy: string;
  try {
    clusterPolicy = fromUtf8.decode(p.subarray(43));
  } catch {
    throw bad('the cluster policy text is not UTF-8');
  }
  const key = trust === 'none' ? new Uint8Array(32) : p.slice(5, 5 + p[4]);
  const config: NicConfig = { securityPolicy: policy, clearManagement: p[1] === 1, allowedClearCommands: p[2], trustAnchor: { kind: trust, key }, clusterPolicy };
  try {
    assertNicConfig(config);
  } catch (e) {
    throw bad((e as Error).message);
  }
  return { config: freezeConfig(config), pagesWritten: u32(p, 37) };
}

// ---------------------------------------------------------------- SA records

const SA_PAYLOAD = 180;
const DIR_BYTES = 78;
/** Policy esp: directions without the AH fields (spi u32, key length u8, key||salt[36]). */
const SA_PAYLOAD_ESP = 106;
const DIR_BYTES_ESP = 41;
const ENC_KEY_LENGTHS: Record<EspTransform, number[]> = { 'aes-gcm-16': [20, 28, 36], 'chacha20-poly1305': [36] };

function assertSpi(spi: number, what: string, zeroOk: boolean): void {
  if (!Number.isInteger(spi) || spi < (zeroOk ? 0 : 1) || spi >= HEARTBEAT_SPI) {
    throw usage(`${what} must be an integer 1..0xFFFFFFFE (0xFFFFFFFF marks heartbeats), got ${spi}`);
  }
}

export function assertSaPair(sa: SaPair): void {
  if (!Number.isInteger(sa.generation) || sa.generation < 1 || sa.generation > MAX_U32) throw usage(`SA generation must be 1..2^32-1, got ${sa.generation}`);
  if (!(sa.transform in ESP_TRANSFORM_ID)) throw usage(`unknown ESP transform ${String(sa.transform)}`);
  if (typeof sa.esn !== 'boolean') throw usage('esn must be a boolean');
  if (sa.policy !== 'esp' && sa.policy !== 'esp+ah') throw usage(`SA policy must be esp or esp+ah, got ${String(sa.policy)}`);
  if (sa.origin !== 'ike' && sa.origin !== 'manual') throw usage(`SA origin must be ike or manual, got ${String(sa.origin)}`);
  for (const [name, d] of [['toNic', sa.toNic], ['fromNic', sa.fromNic]] as const) {
    assertSpi(d.spi, `${name}.spi`, false);
    if (!(d.encKey instanceof Uint8Array) || !ENC_KEY_LENGTHS[sa.transform].includes(d.encKey.length)) {
      throw usage(`${name}.encKey for ${sa.transform} must be key||salt of ${ENC_KEY_LENGTHS[sa.transform].join(', ')} bytes`);
    }
    if (!(d.ahKey instanceof Uint8Array) || (d.ahKey.length !== 0 && d.ahKey.length !== 32)) throw usage(`${name}.ahKey must be empty or 32 bytes`);
    assertSpi(d.ahSpi, `${name}.ahSpi`, sa.policy === 'esp');
    if (sa.policy === 'esp+ah' && d.ahKey.length !== 32) throw usage(`${name}.ahKey must be 32 bytes under esp+ah (HMAC-SHA-256-128, RFC 4868)`);
  }
}

function cloneSa(sa: SaPair): SaPair {
  const dir = (d: SaDirection): SaDirection => ({ spi: d.spi, encKey: Uint8Array.from(d.encKey), ahSpi: d.ahSpi, ahKey: Uint8Array.from(d.ahKey) });
  return { generation: sa.generation, transform: sa.transform, esn: sa.esn, policy: sa.policy, toNic: dir(sa.toNic), fromNic: dir(sa.fromNic), origin: sa.origin };
}

/** Pages an SA record of this policy takes: 2 under esp, 3 under esp+ah. */
function saRecordPages(policy: SecurityPolicy): number {
  return Math.ceil((FRAME + (policy === 'esp' ? SA_PAYLOAD_ESP : SA_PAYLOAD) + CRC) / EEPROM_PAGE);
}

/** Offset of the initial reservations and page count in an SA payload of this length (the layout's tail). */
const saTail = (payloadLength: number): number => payloadLength - 20;

function encodeSa(sa: SaPair, init: Reservation, pagesWritten: number): Uint8Array {
  const esp = sa.policy === 'esp';
  const p = new Uint8Array(esp ? SA_PAYLOAD_ESP : SA_PAYLOAD);
  p[0] = ESP_TRANSFORM_ID[sa.transform];
  p[1] = sa.esn ? 1 : 0;
  p[2] = esp ? 1 : 2;
  p[3] = sa.origin === 'ike' ? 0 : 1;
  [sa.toNic, sa.fromNic].forEach((d, i) => {
    const o = 4 + i * (esp ? DIR_BYTES_ESP : DIR_BYTES);
    putU32(p, o, d.spi);
    p[o + 4] = d.encKey.length;
    p.set(d.encKey, o + 5);
    if (esp) return; // no AH fields: ahSpi 0 and an empty AH key (assertSaPair)
    putU32(p, o + 41, d.ahSpi);
    p[o + 45] = d.ahKey.length;
    p.set(d.ahKey, o + 46);
  });
  const t = saTail(p.length);
  putU64(p, t, init.outReserved);
  putU64(p, t + 8, init.inReserved);
  putU32(p, t + 16, pagesWritten);
  return p;
}

function decodeSa(generation: number, p: Uint8Array, bad: (detail: string) => ProtocolError): { sa: SaPair; init: Reservation; pagesWritten: number } {
  // Two layouts: the full one (any policy; esp records written before the short layout existed use it
  // too) and the short esp one, told apart by the payload length in the frame.
  const short = p.length === SA_PAYLOAD_ESP;
  if (p.length !== SA_PAYLOAD && !short) throw bad(`payload is ${p.length} bytes, not ${SA_PAYLOAD} (or ${SA_PAYLOAD_ESP} under policy esp)`);
  const transform = (Object.keys(ESP_TRANSFORM_ID) as EspTransform[]).find((t) => ESP_TRANSFORM_ID[t] === p[0]);
  if (!transform || p[1] > 1 || (p[2] !== 1 && p[2] !== 2) || p[3] > 1) throw bad('transform, ESN, policy or origin field out of range');
  if (short && p[2] !== 1) throw bad(`a ${SA_PAYLOAD_ESP}-byte SA record must have policy esp`);
  const dir = (o: number): SaDirection => {
    if (p[o + 4] > 36 || (!short && p[o + 45] > 32)) throw bad('key length out of range');
    const encKey = p.slice(o + 5, o + 5 + p[o + 4]);
    if (short) return { spi: u32(p, o), encKey, ahSpi: 0, ahKey: new Uint8Array(0) };
    return { spi: u32(p, o), encKey, ahSpi: u32(p, o + 41), ahKey: p.slice(o + 46, o + 46 + p[o + 45]) };
  };
  const dirBytes = short ? DIR_BYTES_ESP : DIR_BYTES;
  const sa: SaPair = { generation, transform, esn: p[1] === 1, policy: p[2] === 1 ? 'esp' : 'esp+ah', toNic: dir(4), fromNic: dir(4 + dirBytes), origin: p[3] === 0 ? 'ike' : 'manual' };
  try {
    assertSaPair(sa);
  } catch (e) {
    throw bad((e as Error).message);
  }
  const t = saTail(p.length);
  return { sa, init: { outReserved: u64(p, t), inReserved: u64(p, t + 8) }, pagesWritten: u32(p, t + 16) };
}

// ---------------------------------------------------------------- directory and checkpoint

interface Directory {
  generation: number;
  activeGen: number;
  activeSlot: number;
  previousGen: number;
  previousSlot: number;
  discardedUpTo: number;
}

function encodeDirectory(d: Directory): Uint8Array {
  const p = new Uint8Array(14);
  putU32(p, 0, d.activeGen);
  p[4] = d.activeSlot;
  putU32(p, 5, d.previousGen);
  p[9] = d.previousSlot;
  putU32(p, 10, d.discardedUpTo);
  return p;
}

function decodeDirectory(generation: number, p: Uint8Array, bad: (detail: string) => ProtocolError): Directory {
  if (p.length !== 14) throw bad(`payload is ${p.length} bytes, not 14`);
  const d: Directory = { generation, activeGen: u32(p, 0), activeSlot: p[4], previousGen: u32(p, 5), previousSlot: p[9], discardedUpTo: u32(p, 10) };
  const slotOk = (gen: number, slot: number): boolean => (gen === 0 ? slot === NO_SLOT : slot < SA_SLOTS);
  if (!slotOk(d.activeGen, d.activeSlot) || !slotOk(d.previousGen, d.previousSlot)) throw bad('slot number out of range');
  if (d.previousGen !== 0 && (d.previousGen >= d.activeGen || d.previousSlot === d.activeSlot)) throw bad('previous SA is not older than the active one');
  return d;
}

interface Checkpoint {
  generation: number;
  lastAuthenticated: number;
  entries: SeqCheckpoint[];
  /** The highest sync epoch this NIC has issued (wire/sync-frame.ts); 0 = none. */
  syncEpoch: number;
  /**
   * Epochs below it were issued by another history of this NIC: a station's SET made it jump above its own counter
   * (its EEPROM had been restored from a backup), so it knows nothing of commands sent under them. 0 = none.
   */
  epochFloor: number;
  /**
   * How far below `syncEpoch` the lowest epoch still live was when this checkpoint was written (0-14; LIVE_SPAN_FAR:
   * that far or farther). Epochs below syncEpoch - liveSpan had ended by then, so whatever ran under them is in the
   * executed-command record of this image, whichever copy of it a NIC boots from; the others may have run more
   * commands after it (exec-record.ts query(), issue 17's seed 6799). Epochs stay below 2^30 (wire/sync-iv.ts), so
   * it rides in the top two bits of the two epoch words; 0 in images written before it (their old reading).
   */
  liveSpan: number;
}

/** Checkpoint.liveSpan's "every epoch up to the sync epoch may have been live". */
export const LIVE_SPAN_FAR = 15;
const EPOCH_BITS = 0x3fffffff;

/**
 * Two layouts, told apart by length (mod 20): the one before sync epochs, `lastAuthenticated u32 | n u8 | n x entry`
 * (5 + 20n), and `lastAuthenticated u32 | syncEpoch u32 | epochFloor u32 | n x entry` (12 + 20n; n = 0..2, so a
 * checkpoint still fits its 64-byte page; the live span in the epoch words' top bits). An entry: generation u32 | outReserved u64 | inReserved u64.
 */
function encodeCheckpoint(c: Checkpoint): Uint8Array {
  const p = new Uint8Array(12 + 20 * c.entries.length);
  putU32(p, 0, c.lastAuthenticated);
  putU32(p, 4, (c.syncEpoch | ((c.liveSpan >> 2) << 30)) >>> 0);
  putU32(p, 8, (c.epochFloor | ((c.liveSpan & 3) << 30)) >>> 0);
  c.entries.forEach((e, i) => {
    putU32(p, 12 + i * 20, e.generation);
    putU64(p, 16 + i * 20, e.outReserved);
    putU64(p, 24 + i * 20, e.inReserved);
  });
  return p;
}

function decodeCheckpoint(generation: number, p: Uint8Array, bad: (detail: string) => ProtocolError): Checkpoint {
  const legacy = p.length % 20 === 5;
  const n = legacy ? p[4] : (p.length - 12) / 20;
  if (legacy ? p.length !== 5 + 20 * n || n > 2 : !Number.isInteger(n) || n < 0 || n > 2) throw bad('entry count does not match the payload');
  const at = legacy ? 5 : 12;
  const entries: SeqCheckpoint[] = [];
  for (let i = 0; i < n; i++) entries.push({ generation: u32(p, at + i * 20), outReserved: u64(p, at + 4 + i * 20), inReserved: u64(p, at + 12 + i * 20) });
  const se = legacy ? 0 : u32(p, 4);
  const ef = legacy ? 0 : u32(p, 8);
  const syncEpoch = se & EPOCH_BITS;
  const epochFloor = ef & EPOCH_BITS;
  const liveSpan = ((se >>> 30) << 2) | (ef >>> 30);
  if (epochFloor > syncEpoch) throw bad('the epoch floor is above the highest epoch issued');
  if (liveSpan > LIVE_SPAN_FAR) throw bad(`live span ${liveSpan} is past ${LIVE_SPAN_FAR}`);
  return { generation, lastAuthenticated: u32(p, 0), entries, syncEpoch, epochFloor, liveSpan };
}

// ---------------------------------------------------------------- the image

interface HeldSa {
  sa: SaPair;
  slot: number;
  init: Reservation;
}

interface ImageState {
  dev: EepromDevice;
  name: string;
  serial: string;
  /** The NIC id from the identity record; the serial for an image written before it existed. */
  nicId: string;
  /** The image has no identity record (written before NIC ids had prefixes): nicId is its serial. */
  legacyIdentity: boolean;
  config: Readonly<NicConfig>;
  configGen: number;
  configCopy: number;
  dir: Directory;
  dirCopy: number;
  olderDir: Directory | null;
  slotGen: number[];
  active: HeldSa | null;
  previous: HeldSa | null;
  pending: HeldSa | null;
  maxGeneration: number;
  checkpoint: Checkpoint;
  /** At boot the ring could not prove its newest checkpoint the newest one written (see load()). */
  checkpointMayBeLost: boolean;
  writes: Record<EepromRegion, number>;
  recovered: string[];
}

function assertSerial(serial: string): void {
  if (typeof serial !== 'string' || serial.length < 1 || serial.length > SERIAL_MAX || !/^[\x20-\x7e]+$/.test(serial)) {
    throw usage(`the NIC serial must be 1-${SERIAL_MAX} printable ASCII characters, got ${JSON.stringify(serial)}`);
  }
}

function assertNicId(id: string): void {
  if (typeof id !== 'string' || id.length < 1 || id.length > NIC_ID_MAX || !/^[\x21-\x7e]+$/.test(id)) {
    throw usage(`the NIC id must be 1-${NIC_ID_MAX} printable ASCII characters without spaces, got ${JSON.stringify(id)}`);
  }
}

function assertReserved(v: bigint, what: string): void {
  if (typeof v !== 'bigint' || v < 0n || v > MAX_U64) throw usage(`${what} must be a bigint 0..2^64-1, got ${String(v)}`);
}

export class EepromImage {
  private readonly s: ImageState;

  private constructor(s: ImageState) {
    this.s = s;
  }

  /**
   * Writes a fresh image: erases the header and the first page of every record slot (so no record of an
   * earlier image comes back), then writes the configuration, an empty directory, the IPMI users record
   * (`ipmiUsers`, default: lanplus off, no users; eeprom-ipmi-users.ts), the identity record (`nicId`, default: the
   * serial) and the header last.
   */
  static format(dev: EepromDevice, serial: string, config: NicConfig, name = 'EEPROM image', ipmiUsers?: IpmiUsersConfig, nicId = serial): EepromImage {
    if (dev.size !== EEPROM_SIZE) throw new UsageError('E_EEPROM_SIZE', `cannot format a ${dev.size}-byte part; the image is ${EEPROM_SIZE} bytes (24C256)`);
    assertSerial(serial);
    assertNicId(nicId);
    assertNicConfig(config);
    if (ipmiUsers) encodeIpmiUsers(ipmiUsers); // E_USAGE before anything is erased
    const blank = new Uint8Array(EEPROM_PAGE).fill(ERASED);
    // The header goes first, so a format torn half way leaves no magic rather than a mix of two images.
    const erase: number[] = [HEADER_PAGE, ...CONFIG_PAGES, ...DIRECTORY_PAGES, IDENTITY_PAGE];
    for (let i = 0; i < CHECKPOINT_RING; i++) erase.push(CHECKPOINT_PAGE + i);
    for (let i = 0; i < SA_SLOTS; i++) erase.push(SA_PAGE + i * SA_RECORD_PAGES);
    for (const page of erase) dev.write(page * EEPROM_PAGE, blank);
    ExecRecord.erase(dev);

    const writes = { ...FORMAT_PAGES, header: 1 };
    const cfg = cloneConfig(config);
    const cfgPages = Math.ceil((FRAME + encodeConfig(cfg, 0).length + CRC) / EEPROM_PAGE);
    writes.config += cfgPages;
    writePages(dev, CONFIG_PAGES[0], encodeRecord(KIND.config, 1, encodeConfig(cfg, writes.config)));
    const dir: Directory = { generation: 1, activeGen: 0, activeSlot: NO_SLOT, previousGen: 0, previousSlot: NO_SLOT, discardedUpTo: 0 };
    writePages(dev, DIRECTORY_PAGES[0], encodeRecord(KIND.directory, dir.generation, encodeDirectory(dir)));
    writes.directory += 1;
    EepromIpmiUsers.format(dev, ipmiUsers);
    const identity = encodeRecord(KIND.identity, 1, encodeIdentity(nicId));
    writePages(dev, IDENTITY_PAGE, identity);
    writes.header += 1 + identity.length / EEPROM_PAGE; // its erase at the top and the record
    const head = new Uint8Array(23);
    putU32(head, 0, EEPROM_SIZE);
    putU16(head, 4, EEPROM_PAGE);
    head[6] = serial.length;
    head.set(utf8.encode(serial), 7);
    writePages(dev, HEADER_PAGE, encodeRecord(KIND.header, 1, head, true));
    writes.header += 1;
    return new EepromImage({
      dev, name, serial, nicId, legacyIdentity: false, config: cfg, configGen: 1, configCopy: 0, dir, dirCopy: 0, olderDir: null,
      slotGen: new Array<number>(SA_SLOTS).fill(0), active: null, previous: null, pending: null, maxGeneration: 0,
      checkpoint: { generation: 0, lastAuthenticated: 0, entries: [], syncEpoch: 0, epochFloor: 0, liveSpan: 0 }, checkpointMayBeLost: false, writes, recovered: [],
    });
  }

  /**
   * Boots from an existing image: the newest valid record of each kind. A foreign file is E_EEPROM_FOREIGN,
   * a wrong-sized one E_EEPROM_SIZE, a record that cannot be replaced by an older good copy E_EEPROM_CRC
   * (the message names `name`, the file, and the record). Older copies used instead of a torn newer one
   * are listed in `recoveredRecords`.
   */
  static load(dev: EepromDevice, name = 'EEPROM image'): EepromImage {
    const head = dev.read(0, Math.min(EEPROM_PAGE, dev.size));
    if (head.length < MAGIC.length || MAGIC.some((b, i) => head[i] !== b)) {
      const what = isBlank(head) ? 'the part is blank (never formatted)' : `it starts with ${hex(head.subarray(0, 8))}${head[0] === 0x89 && head[1] === 0x50 ? ' (a PNG file?)' : ''}`;
      throw new ProtocolError('E_EEPROM_FOREIGN', `${name}: not a Lifeline EEPROM image: no 'LFLN' magic at offset 0, ${what}. Point the NIC at its own image file, or format a new one.`);
    }
    if (dev.size !== EEPROM_SIZE) {
      throw new ProtocolError('E_EEPROM_SIZE', `${name}: the image is ${dev.size} bytes; a Lifeline EEPROM (24C256) is exactly ${EEPROM_SIZE}. The file was truncated or padded: restore it from a backup.`);
    }
    const hd = decodeRecord(head, KIND.header, name, 'header (page 0)', true);
    if (hd.state !== 'ok') throw corrupt(name, 'the header record (page 0, offset 0x0000)', hd.state === 'bad' ? hd.why : 'blank');
    const hp = hd.payload;
    const badHeader = (d: string) => corrupt(name, 'the header record (page 0, offset 0x0000)', d);
    if (hp.length !== 23 || hp[6] < 1 || hp[6] > SERIAL_MAX) throw badHeader('serial length out of range');
    if (u32(hp, 0) !== EEPROM_SIZE || u16(hp, 4) !== EEPROM_PAGE) {
      throw new ProtocolError('E_EEPROM_SIZE', `${name}: the header describes a ${u32(hp, 0)}-byte part with ${u16(hp, 4)}-byte pages; this firmware emulates ${EEPROM_SIZE} bytes with ${EEPROM_PAGE}-byte pages.`);
    }
    const serial = String.fromCharCode(...hp.subarray(7, 7 + hp[6]));
    if (!/^[\x20-\x7e]+$/.test(serial)) throw badHeader('the serial is not printable ASCII');
    const recovered: string[] = [];
    const writes: Record<EepromRegion, number> = { ...FORMAT_PAGES };

    // Identity: one record, written once at format before the header; none in an image of an earlier release.
    const idRec = decodeRecord(dev.read(IDENTITY_PAGE * EEPROM_PAGE, IDENTITY_RECORD_PAGES * EEPROM_PAGE), KIND.identity, name, IDENTITY_NAME);
    if (idRec.state === 'bad') throw corrupt(name, IDENTITY_NAME, idRec.why);
    const legacyIdentity = idRec.state === 'blank';
    const nicId = idRec.state === 'ok' ? decodeIdentity(idRec.payload, (d) => corrupt(name, IDENTITY_NAME, d)) : serial;
    if (idRec.state === 'ok') writes.header += 1 + Math.ceil((FRAME + idRec.payload.length + CRC) / EEPROM_PAGE);

    // Configuration: two ping-pong copies.
    const cfgCopies = CONFIG_PAGES.map((p, i) => decodeRecord(dev.read(p * EEPROM_PAGE, CONFIG_RECORD_PAGES * EEPROM_PAGE), KIND.config, name, configName(i)));
    const ci = pickCopy(cfgCopies, configName, 'the configuration record', name, recovered);
    const cfgRec = cfgCopies[ci] as Extract<Decoded, { state: 'ok' }>;
    const { config, pagesWritten } = decodeConfig(cfgRec.payload, (d) => corrupt(name, configName(ci), d));
    writes.config = pagesWritten;

    // SA directory: two ping-pong copies.
    const dirCopies = DIRECTORY_PAGES.map((p, i) => decodeRecord(dev.read(p * EEPROM_PAGE, EEPROM_PAGE), KIND.directory, name, directoryName(i)));
    const di = pickCopy(dirCopies, directoryName, 'the SA directory', name, recovered);
    const dirOf = (i: number): Directory | null => {
      const d = dirCopies[i];
      return d.state === 'ok' ? decodeDirectory(d.generation, d.payload, (x) => corrupt(name, directoryName(i), x)) : null;
    };
    const dir = dirOf(di)!;
    const olderDir = dirOf(1 - di);
    writes.directory += dir.generation;

    // SA slots: the directory's active and previous must be intact; anything else is spare.
    const slotGen = new Array<number>(SA_SLOTS).fill(0);
    const slots = new Array<Decoded>(SA_SLOTS);
    let maxGeneration = Math.max(dir.activeGen, dir.discardedUpTo);
    for (let i = 0; i < SA_SLOTS; i++) {
      const d = decodeRecord(dev.read((SA_PAGE + i * SA_RECORD_PAGES) * EEPROM_PAGE, SA_RECORD_PAGES * EEPROM_PAGE), KIND.sa, name, saSlotName(i));
      slots[i] = d;
      if (d.state === 'ok') {
        slotGen[i] = d.generation;
        maxGeneration = Math.max(maxGeneration, d.generation);
        if (d.payload.length === SA_PAYLOAD || d.payload.length === SA_PAYLOAD_ESP) writes.sa = Math.max(writes.sa, u32(d.payload, saTail(d.payload.length) + 16));
      }
    }
    const held = (gen: number, slot: number, role: string): HeldSa | null => {
      if (gen === 0) return null;
      const d = slots[slot];
      const record = `${saSlotName(slot)}, the ${role} SA (generation ${gen}) named by ${directoryName(di)}`;
      if (d.state !== 'ok') throw corrupt(name, record, d.state === 'bad' ? d.why : 'blank');
      if (d.generation !== gen) throw corrupt(name, record, `it holds generation ${d.generation}`);
      const { sa, init } = decodeSa(gen, d.payload, (x) => corrupt(name, record, x));
      return { sa, slot, init };
    };
    const active = held(dir.activeGen, dir.activeSlot, 'active');
    const previous = held(dir.previousGen, dir.previousSlot, 'previous');
    // The pending SA is implied: the newest record above both the active and the discarded generations.
    const floor = Math.max(dir.activeGen, dir.discardedUpTo);
    let pi = -1;
    slots.forEach((d, i) => {
      if (d.state === 'ok' && d.generation > floor && (pi < 0 || d.generation > slotGen[pi])) pi = i;
      if (d.state === 'bad') recovered.push(`${saSlotName(i)}: ${d.why}; a spare slot (torn pending write?), ignored`);
    });
    let pending: HeldSa | null = null;
    if (pi >= 0) {
      const d = slots[pi] as Extract<Decoded, { state: 'ok' }>;
      const { sa, init } = decodeSa(d.generation, d.payload, (x) => corrupt(name, `${saSlotName(pi)}, the pending SA (generation ${d.generation})`, x));
      pending = { sa, slot: pi, init };
    }

    // Sequence checkpoints: a ring, generation g in page CHECKPOINT_PAGE + g mod 8. One power loss tears at most
    // the page the next generation was going to, and the NIC's next checkpoint is written into that same page;
    // so a sound ring holds the generations V-7..V in their pages (erased where none was written yet), V the
    // newest. Any other page that is not exactly that is not a torn write but a corrupt file: E_EEPROM_CRC. The
    // page generation V+1 goes to is the exception (newestCheckpointMayBeLost).
    const ringPages = Array.from({ length: CHECKPOINT_RING }, (_, i) => dev.read((CHECKPOINT_PAGE + i) * EEPROM_PAGE, EEPROM_PAGE));
    const ring = ringPages.map((page, i) => decodeRecord(page, KIND.checkpoint, name, checkpointName(CHECKPOINT_PAGE + i)));
    const ri = newest(ring);
    const newestGen = ri >= 0 ? (ring[ri] as Extract<Decoded, { state: 'ok' }>).generation : 0;
    const nextPage = (newestGen + 1) % CHECKPOINT_RING;
    let checkpointMayBeLost = false;
    ring.forEach((d, i) => {
      // The generation this page holds in a sound ring: the newest g <= V with g mod 8 = i (0: never written).
      const back = (newestGen - i + CHECKPOINT_RING) % CHECKPOINT_RING;
      const expected = newestGen - back >= 1 ? newestGen - back : 0;
      // Never written means erased (0xFF) throughout: a page whose frame reads blank but whose body does not
      // (a zeroed or half-erased record) is damage, not an unused page.
      const erased = allBytes(ringPages[i], ERASED);
      const sound = expected === 0 ? erased : d.state === 'ok' && d.generation === expected;
      if (i === nextPage) {
        // Generation V-7 intact here, or the page erased while the ring has not gone round yet, shows that V+1 was
        // never written. Anything else may hide a checkpoint the NIC wrote and used (torn, or gone bad since).
        // (An erased page is taken at its word: an EEPROM does not erase a page by itself; bit errors, torn
        // writes and zeroed reads are what this catches, and whoever writes the file could forge a record
        // anyway, a CRC being no MAC.)
        checkpointMayBeLost = !sound;
        return;
      }
      if (sound) return;
      const found = d.state === 'bad' ? d.why : d.state === 'blank' ? (erased ? 'erased' : 'a blank frame over a non-blank body') : `generation ${d.generation}`;
      const belongs = expected === 0 ? 'no checkpoint was written there' : `generation ${expected} belongs there`;
      throw corrupt(name, checkpointName(CHECKPOINT_PAGE + i), `${found}; ${belongs}, and only the page of the next generation may be torn`);
    });
    let checkpoint: Checkpoint = { generation: 0, lastAuthenticated: 0, entries: [], syncEpoch: 0, epochFloor: 0, liveSpan: 0 };
    if (ri >= 0) {
      const r = ring[ri] as Extract<Decoded, { state: 'ok' }>;
      checkpoint = decodeCheckpoint(r.generation, r.payload, (x) => corrupt(name, checkpointName(CHECKPOINT_PAGE + ri), x));
    }
    if (!allBytes(ringPages[nextPage], ERASED) && checkpointMayBeLost) {
      const d = ring[nextPage];
      recovered.push(
        `${checkpointName(CHECKPOINT_PAGE + nextPage)}: ${d.state === 'bad' ? d.why : 'not a checkpoint record'}; a torn write of generation ${newestGen + 1}, or that checkpoint ` +
          `corrupted after it was used: using generation ${newestGen}, with every sequence reservation moved on past what the lost one can have held`,
      );
    }

    // Evidence against a directory fallback: every SA a checkpoint names authenticated a packet or was held, so
    // a directory made it active before the checkpoint was written. A directory copy that does not know it is
    // older than one the NIC acted on: the newer copy was not torn, it went bad afterwards.
    const named = Math.max(checkpoint.lastAuthenticated, ...checkpoint.entries.map((e) => e.generation));
    if (named > dir.activeGen) {
      const other = dirCopies[1 - di];
      const lost = other.state === 'bad' ? `${other.why}; ` : other.state === 'blank' ? 'blank; ' : '';
      throw corrupt(
        name,
        other.state === 'ok' ? `the SA directory (${directoryName(di)})` : directoryName(1 - di),
        `${lost}the sequence checkpoint (generation ${checkpoint.generation}) names SA generation ${named}, ` +
          `but the readable directory copy has ${dir.activeGen === 0 ? 'no active SA' : `generation ${dir.activeGen} active`}, so a newer directory was in use`,
      );
    }
    writes.checkpoint += checkpoint.generation;

    return new EepromImage({
      dev, name, serial, nicId, legacyIdentity, config, configGen: cfgRec.generation, configCopy: ci, dir, dirCopy: di, olderDir, slotGen,
      active, previous, pending, maxGeneration, checkpoint, checkpointMayBeLost, writes, recovered,
    });
  }

  get name(): string {
    return this.s.name;
  }

  /** The part's serial number (header): its own value, not the NIC id (except in images of earlier releases). */
  get serial(): string {
    return this.s.serial;
  }

  /** The NIC id the image was formatted for (identity record; the serial in an image without one). */
  get nicId(): string {
    return this.s.nicId;
  }

  /** No identity record: an image of a release before NIC id prefixes, read with its serial as its id. */
  get legacyIdentity(): boolean {
    return this.s.legacyIdentity;
  }

  get config(): Readonly<NicConfig> {
    return this.s.config;
  }

  /** The SAs as the directory names them (pending = newest unnamed SA record above the active one). */
  get sas(): { active: SaPair | null; previous: SaPair | null; pending: SaPair | null } {
    return { active: this.s.active?.sa ?? null, previous: this.s.previous?.sa ?? null, pending: this.s.pending?.sa ?? null };
  }

  /** The lowest generation a new pending SA may take. */
  nextGeneration(): number {
    return this.s.maxGeneration + 1;
  }

  /** The highest sync epoch this NIC has issued, as of the last checkpoint (0 = none). */
  get syncEpoch(): number {
    return this.s.checkpoint.syncEpoch;
  }

  /** Epochs below it belong to another history of this NIC (Checkpoint.epochFloor). */
  get epochFloor(): number {
    return this.s.checkpoint.epochFloor;
  }

  /**
   * Epochs below it had all ended when the last checkpoint was written (Checkpoint.liveSpan): this image's
   * executed-command record holds every command that ran under them. 0 when that is not known.
   */
  get liveFloor(): number {
    const c = this.s.checkpoint;
    return c.liveSpan >= LIVE_SPAN_FAR ? 0 : c.syncEpoch - c.liveSpan;
  }

  /** Newest SA generation under which a station packet authenticated, as of the last checkpoint (0 = none). */
  get lastAuthenticated(): number {
    return this.s.checkpoint.lastAuthenticated;
  }

  /**
   * As read at boot: the page the next checkpoint goes to was neither the one eight generations back nor erased
   * (ring not gone round yet), so it may have held a newer checkpoint: a torn write, which the NIC never acted on,
   * or a checkpoint that went bad after it was used. Nobody can tell which, so checkpoints() may be one checkpoint
   * behind what was reserved and used, and the SA database moves every reservation on by what one can add.
   */
  get newestCheckpointMayBeLost(): boolean {
    return this.s.checkpointMayBeLost;
  }

  /** Reservations for the active and previous SA (in that order): from the newest checkpoint, else the SA record's initial one. */
  checkpoints(): SeqCheckpoint[] {
    const out: SeqCheckpoint[] = [];
    for (const h of [this.s.active, this.s.previous]) {
      if (!h) continue;
      const e = this.s.checkpoint.entries.find((x) => x.generation === h.sa.generation);
      out.push(e ? { ...e } : { generation: h.sa.generation, ...h.init });
    }
    return out;
  }

  get pageWrites(): { total: number; byRegion: Record<EepromRegion, number> } {
    const byRegion = { ...this.s.writes };
    return { total: Object.values(byRegion).reduce((a, b) => a + b, 0), byRegion };
  }

  /** Records that load() replaced by an older copy or ignored, one line each (for the NIC's log). */
  get recoveredRecords(): readonly string[] {
    return this.s.recovered;
  }

  // ------------------------------------------------------------ writes

  /** Replaces the configuration: written into the older copy, so a torn write leaves the current one. */
  writeConfig(c: NicConfig): void {
    assertNicConfig(c);
    const s = this.s;
    const cfg = cloneConfig(c);
    const pages = Math.ceil((FRAME + encodeConfig(cfg, 0).length + CRC) / EEPROM_PAGE);
    const copy = 1 - s.configCopy;
    const gen = this.bump(s.configGen);
    const rec = encodeRecord(KIND.config, gen, encodeConfig(cfg, s.writes.config + pages));
    this.write('config', CONFIG_PAGES[copy], rec);
    s.config = cfg;
    s.configGen = gen;
    s.configCopy = copy;
  }

  /**
   * Stores `sa` as the pending SA (2 page writes under policy esp, 3 under esp+ah; no directory write).
   * Its generation must be at least nextGeneration(); it replaces an earlier pending SA in that one's slot.
   * `reservation` is the sequence reservation the SA starts with once committed (DESIGN §2.6).
   */
  writePending(sa: SaPair, reservation: Reservation = { outReserved: 0n, inReserved: 0n }): void {
    assertSaPair(sa);
    assertReserved(reservation.outReserved, 'outReserved');
    assertReserved(reservation.inReserved, 'inReserved');
    const s = this.s;
    if (sa.generation <= s.maxGeneration) {
      throw usage(`a pending SA needs a generation above every one this NIC has seen: got ${sa.generation}, next is ${s.maxGeneration + 1}`);
    }
    const slot = s.pending ? s.pending.slot : this.spareSlot();
    const init = { ...reservation };
    this.write('sa', SA_PAGE + slot * SA_RECORD_PAGES, encodeRecord(KIND.sa, sa.generation, encodeSa(sa, init, s.writes.sa + saRecordPages(sa.policy))));
    s.slotGen[slot] = sa.generation;
    s.pending = { sa: cloneSa(sa), slot, init };
    s.maxGeneration = sa.generation;
  }

  /**
   * Pending becomes active (one directory page). `keepPrevious` is the generation that stays usable next
   * to it: the current active or previous SA, or 0 for none. Choosing it is the SA database's job
   * (make-before-break, DESIGN §2.5).
   */
  commitPending(keepPrevious: number): void {
    const s = this.s;
    if (!s.pending) throw new UsageError('E_NO_SA', 'there is no pending SA to commit');
    const prev = this.heldByGeneration(keepPrevious, true);
    const p = s.pending;
    this.writeDirectory({ activeGen: p.sa.generation, activeSlot: p.slot, previousGen: prev?.sa.generation ?? 0, previousSlot: prev?.slot ?? NO_SLOT, discardedUpTo: s.dir.discardedUpTo });
    s.active = p;
    s.previous = prev;
    s.pending = null;
  }

  /** Forgets the pending SA (one directory page); `keepPrevious` as for commitPending, minus the active SA. */
  discardPending(keepPrevious: number = this.s.previous?.sa.generation ?? 0): void {
    const s = this.s;
    if (!s.pending) throw new UsageError('E_NO_SA', 'there is no pending SA to discard');
    const prev = this.heldByGeneration(keepPrevious, false);
    this.writeDirectory({ activeGen: s.dir.activeGen, activeSlot: s.dir.activeSlot, previousGen: prev?.sa.generation ?? 0, previousSlot: prev?.slot ?? NO_SLOT, discardedUpTo: s.pending.sa.generation });
    s.previous = prev;
    s.pending = null;
  }

  /**
   * One checkpoint page: reservations for held SAs (active and/or previous) and the newest generation a
   * station packet authenticated under. Written into the next ring page, so a torn write leaves the last.
   */
  writeCheckpoint(cp: { lastAuthenticated: number; entries: SeqCheckpoint[]; syncEpoch?: number; epochFloor?: number; liveFloor?: number }): void {
    const s = this.s;
    if (!Number.isInteger(cp.lastAuthenticated) || cp.lastAuthenticated < 0 || cp.lastAuthenticated > s.maxGeneration) {
      throw usage(`lastAuthenticated must be a generation this NIC has seen, got ${cp.lastAuthenticated}`);
    }
    if (cp.entries.length > 2) throw usage('a checkpoint holds at most two SAs (active and previous)');
    const heldGens = [s.active?.sa.generation, s.previous?.sa.generation];
    const entries = cp.entries.map((e) => {
      if (!heldGens.includes(e.generation)) throw usage(`generation ${e.generation} is neither the active nor the previous SA`);
      assertReserved(e.outReserved, 'outReserved');
      assertReserved(e.inReserved, 'inReserved');
      return { generation: e.generation, outReserved: e.outReserved, inReserved: e.inReserved };
    });
    if (entries.length === 2 && entries[0].generation === entries[1].generation) throw usage('a checkpoint names each SA once');
    const syncEpoch = cp.syncEpoch ?? s.checkpoint.syncEpoch;
    if (!Number.isInteger(syncEpoch) || syncEpoch < s.checkpoint.syncEpoch || syncEpoch > EPOCH_BITS) {
      throw usage(`the sync epoch only grows: ${syncEpoch} after ${s.checkpoint.syncEpoch}`);
    }
    const epochFloor = cp.epochFloor ?? s.checkpoint.epochFloor;
    if (!Number.isInteger(epochFloor) || epochFloor < s.checkpoint.epochFloor || epochFloor > syncEpoch) {
      throw usage(`the epoch floor only grows and stays at or below the sync epoch: ${epochFloor} after ${s.checkpoint.epochFloor} (sync epoch ${syncEpoch})`);
    }
    // The live span: given with a new sync epoch; otherwise kept (no epoch was issued since, and epochs only end).
    let liveSpan = s.checkpoint.liveSpan;
    if (cp.liveFloor !== undefined) {
      if (!Number.isInteger(cp.liveFloor) || cp.liveFloor < 0 || cp.liveFloor > syncEpoch) throw usage(`the live floor must be 0..${syncEpoch} (the sync epoch), got ${cp.liveFloor}`);
      liveSpan = Math.min(syncEpoch - cp.liveFloor, LIVE_SPAN_FAR);
    } else if (syncEpoch !== s.checkpoint.syncEpoch) liveSpan = LIVE_SPAN_FAR;
    const next: Checkpoint = { generation: this.bump(s.checkpoint.generation), lastAuthenticated: cp.lastAuthenticated, entries, syncEpoch, epochFloor, liveSpan };
    this.write('checkpoint', CHECKPOINT_PAGE + (next.generation % CHECKPOINT_RING), encodeRecord(KIND.checkpoint, next.generation, encodeCheckpoint(next)));
    s.checkpoint = next;
  }

  // ------------------------------------------------------------ internals

  private bump(gen: number): number {
    if (gen >= MAX_U32) throw new UsageError('E_EEPROM_FULL', `${this.s.name}: a record generation would pass 2^32-1; the part is worn out`);
    return gen + 1;
  }

  private heldByGeneration(gen: number, activeOk: boolean): HeldSa | null {
    const s = this.s;
    if (gen === 0) return null;
    if (activeOk && s.active && s.active.sa.generation === gen) return s.active;
    if (s.previous && s.previous.sa.generation === gen) return s.previous;
    throw usage(`generation ${gen} is not ${activeOk ? 'the active or previous' : 'the previous'} SA`);
  }

  /** A slot neither directory copy names: an empty one if any, else the one with the oldest record. */
  private spareSlot(): number {
    const s = this.s;
    const named = new Set<number>();
    for (const d of [s.dir, s.olderDir]) if (d) named.add(d.activeSlot).add(d.previousSlot);
    let best = -1;
    for (let i = 0; i < SA_SLOTS; i++) {
      if (named.has(i)) continue;
      if (best < 0 || s.slotGen[i] < s.slotGen[best]) best = i;
    }
    return best; // at most 4 of the 8 slots are named
  }

  private writeDirectory(d: Omit<Directory, 'generation'>): void {
    const s = this.s;
    const next: Directory = { generation: this.bump(s.dir.generation), ...d };
    const copy = 1 - s.dirCopy;
    this.write('directory', DIRECTORY_PAGES[copy], encodeRecord(KIND.directory, next.generation, encodeDirectory(next)));
    s.olderDir = s.dir;
    s.dir = next;
    s.dirCopy = copy;
  }

  private write(region: EepromRegion, firstPage: number, record: Uint8Array): void {
    const s = this.s;
    for (let o = 0; o < record.length; o += EEPROM_PAGE) {
      s.writes[region]++; // a torn write still wore the page
      s.dev.write(firstPage * EEPROM_PAGE + o, record.subarray(o, o + EEPROM_PAGE));
    }
  }
}


/** Newest good copy of a ping-pong record; a bad other copy is noted; none good is E_EEPROM_CRC. */
function pickCopy(copies: Decoded[], nameOf: (i: number) => string, record: string, file: string, recovered: string[]): number {
  const i = newest(copies);
  if (i < 0) {
    const why = copies.map((d, j) => `${nameOf(j)}: ${d.state === 'bad' ? d.why : 'blank'}`).join('; ');
    throw corrupt(file, `${record} (both copies)`, why);
  }
  const ok = copies[i] as Extract<Decoded, { state: 'ok' }>;
  copies.forEach((d, j) => {
    if (d.state === 'bad') recovered.push(`${nameOf(j)}: ${d.why}; using ${nameOf(i)} (generation ${ok.generation})`);
  });
  return i;
}
