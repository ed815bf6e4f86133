/** Assertions at the store's public entries: local misuse is a UsageError('E_USAGE') naming the argument. */
import { UsageError } from '../../common/errors.js';
import { ESP_TRANSFORM_ID, HEARTBEAT_SPI, type SaDirection, type SaPair } from '../../wire/sa.js';
import {
  COMMAND_OUTCOMES, SA_STATES, type CommandInput, type CommandOutcome, type Fence, type IkeSaSnapshot, type NicRecord, type SaState,
} from './store.js';

const NAME = /^[A-Za-z0-9._:-]{1,64}$/;
export const U64_MAX = (1n << 64n) - 1n;
/** NIC sync epochs are 32-bit counters on the wire (wire/sync-frame.ts); 0 means "none". */
export const SYNC_EPOCH_MAX = 0xffffffff;

function usage(msg: string): UsageError {
  return new UsageError('E_USAGE', msg);
}

export function assertName(what: string, v: unknown): asserts v is string {
  if (typeof v !== 'string' || !NAME.test(v)) {
    throw usage(`${what} must be 1..64 letters, digits or . _ : -, got ${JSON.stringify(v)}`);
  }
}

export function assertInt(what: string, v: unknown, min: number, max: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw usage(`${what} must be an integer in ${min}..${max}, got ${String(v)}`);
  }
}

/** A command log index, or an index with the hash of its command entry (store.ts CommandRef). */
export function assertCommandRef(ref: unknown): void {
  if (typeof ref === 'number') return assertInt('index', ref, 1, Number.MAX_SAFE_INTEGER);
  const r = ref as { index?: unknown; hash?: unknown } | null;
  if (typeof r !== 'object' || r === null || typeof r.hash !== 'string' || !/^[0-9a-f]{64}$/.test(r.hash)) {
    throw usage(`a command is named by its log index or by { index, hash } with the hex SHA-256 of its entry, got ${JSON.stringify(ref)}`);
  }
  assertInt('index', r.index, 1, Number.MAX_SAFE_INTEGER);
}

/** Times are integer milliseconds. */
export function assertTime(what: string, v: unknown): asserts v is number {
  assertInt(what, v, 0, Number.MAX_SAFE_INTEGER);
}

export function assertU64(what: string, v: unknown): asserts v is bigint {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw usage(`${what} must be a bigint in 0..2^64-1, got ${String(v)}`);
}

export function assertBytes(what: string, v: unknown, min: number, max: number): asserts v is Uint8Array {
  if (!(v instanceof Uint8Array) || v.length < min || v.length > max) {
    throw usage(`${what} must be ${min}..${max} bytes, got ${v instanceof Uint8Array ? v.length : typeof v}`);
  }
}

export function assertFence(f: unknown): asserts f is Fence {
  if (typeof f !== 'object' || f === null) throw usage('fence must be { station, epoch }');
  const { station, epoch } = f as Fence;
  assertName('fence.station', station);
  assertInt('fence.epoch', epoch, 1, Number.MAX_SAFE_INTEGER);
}

export function assertGeneration(v: unknown): asserts v is number {
  assertInt('generation', v, 1, 0x7fffffff);
}

export function assertSaState(v: unknown): asserts v is SaState {
  if (!SA_STATES.includes(v as SaState)) throw usage(`SA state must be one of ${SA_STATES.join(', ')}, got ${String(v)}`);
}

export function assertOutcome(v: unknown): asserts v is CommandOutcome {
  if (!COMMAND_OUTCOMES.includes(v as CommandOutcome)) {
    throw usage(`command outcome must be one of ${COMMAND_OUTCOMES.join(', ')}, got ${String(v)}`);
  }
}

function assertDirection(what: string, d: SaDirection): void {
  if (typeof d !== 'object' || d === null) throw usage(`${what} must be an SaDirection`);
  // RFC 4303 §2.1: SPI 0 is reserved; 0xFFFFFFFF marks heartbeats here (DESIGN §2.3).
  assertInt(`${what}.spi`, d.spi, 1, HEARTBEAT_SPI - 1);
  assertBytes(`${what}.encKey`, d.encKey, 1, 64);
  assertInt(`${what}.ahSpi`, d.ahSpi, 0, HEARTBEAT_SPI - 1);
  assertBytes(`${what}.ahKey`, d.ahKey, 0, 64);
}

export function assertSaPair(p: SaPair): void {
  if (typeof p !== 'object' || p === null) throw usage('pair must be an SaPair');
  assertGeneration(p.generation);
  if (!(p.transform in ESP_TRANSFORM_ID)) throw usage(`pair.transform must be one of ${Object.keys(ESP_TRANSFORM_ID).join(', ')}`);
  if (typeof p.esn !== 'boolean') throw usage('pair.esn must be a boolean');
  if (p.policy !== 'esp' && p.policy !== 'esp+ah') throw usage(`pair.policy must be 'esp' or 'esp+ah'`);
  if (p.origin !== 'ike' && p.origin !== 'manual') throw usage(`pair.origin must be 'ike' or 'manual'`);
  assertDirection('pair.toNic', p.toNic);
  assertDirection('pair.fromNic', p.fromNic);
}

export function assertIke(s: IkeSaSnapshot): void {
  if (typeof s !== 'object' || s === null) throw usage('ike must be an IkeSaSnapshot or null');
  assertBytes('ike.spiI', s.spiI, 8, 8);
  assertBytes('ike.spiR', s.spiR, 8, 8);
  for (const k of ['skD', 'skAi', 'skAr', 'skEi', 'skEr', 'skPi', 'skPr'] as const) assertBytes(`ike.${k}`, s[k], 0, 128);
  if (typeof s.initiator !== 'boolean') throw usage('ike.initiator must be a boolean');
  assertInt('ike.nextRequestId', s.nextRequestId, 0, 0xffffffff);
  assertInt('ike.nextPeerRequestId', s.nextPeerRequestId, 0, 0xffffffff);
  const t = s.transforms;
  if (typeof t !== 'object' || t === null) throw usage('ike.transforms must be an object');
  for (const k of ['encr', 'encrKeyBits', 'prf', 'integ', 'dh'] as const) assertInt(`ike.transforms.${k}`, t[k], 0, 0xffff);
}

/** A NIC sync epoch: an integer 1..2^32-1. */
export function assertSyncEpoch(what: string, v: unknown): asserts v is number {
  assertInt(what, v, 1, SYNC_EPOCH_MAX);
}

/** An enrolment record (addNicIfAbsent, updateNic). */
export function assertNicRecord(n: NicRecord): void {
  assertName('nic id', n?.id);
  if (typeof n.address !== 'string' || n.address.length === 0 || n.address.length > 255) {
    throw usage(`nic address must be a host name or address, got ${JSON.stringify(n.address)}`);
  }
  assertInt('securePort', n.securePort, 1, 65535);
  assertInt('clearPort', n.clearPort, 1, 65535);
  assertInt('ikePort', n.ikePort, 1, 65535);
  assertBytes('psk', n.psk, 1, 1024);
  assertTime('enrolledAt', n.enrolledAt);
}

/** A new command entry (appendCommand): a wire identity is given whole or not at all. */
export function assertCommandInput(input: CommandInput): void {
  assertTime('time', input?.time);
  if (typeof input.command !== 'string' || input.command.length === 0 || input.command.length > 64) {
    throw usage(`command must be a name of 1..64 characters, got ${JSON.stringify(input.command)}`);
  }
  if (input.rmcpSeq !== undefined || input.asfTag !== undefined) {
    assertInt('rmcpSeq', input.rmcpSeq, 0, 255);
    assertInt('asfTag', input.asfTag, 0, 255);
  }
  assertOutcome(input.outcome);
  if (input.syncEpoch !== undefined) assertSyncEpoch('syncEpoch', input.syncEpoch);
}

/**
 * The sync epoch of an outcome entry (updateOutcome): only a re-send ('sent') is transmitted under an epoch;
 * an acknowledgement or a failure is not a transmission.
 */
export function assertOutcomeEpoch(outcome: CommandOutcome, syncEpoch: unknown): asserts syncEpoch is number | undefined {
  if (syncEpoch === undefined) return;
  assertSyncEpoch('syncEpoch', syncEpoch);
  if (outcome !== 'sent') throw usage(`syncEpoch records a re-send: give it with outcome 'sent' only, got outcome '${outcome}'`);
}

export function assertStationAddress(v: unknown): asserts v is string {
  if (typeof v !== 'string' || v.length > 255) throw usage('station address must be a string');
}

/** The size of a block of sequence numbers (claimOutbound). */
export function assertBlockSize(size: unknown): asserts size is bigint {
  assertU64('size', size);
  if (size < 1n) throw usage('size must be >= 1');
}
