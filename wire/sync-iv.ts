/**
 * How the two ends choose ESP IVs (RFC 4106 §3.1, RFC 7634 §2: the IV must never repeat under one key; any
 * scheme that ensures it is allowed, and a receiver reads the IV from the packet, as Wireshark does).
 *
 *  - Station -> NIC: IV = sync epoch (u32) || low 32 bits of the ESP sequence number. The epoch is issued by the
 *    NIC at each resynchronisation (wire/sync-frame.ts) and is never issued twice as long as the NIC's EEPROM and
 *    the station's store are not both restored between two syncs; one station process owns an epoch, and numbers
 *    within it are its own counter. So a station whose store was restored (its counters went back) still never
 *    repeats an IV: its next sync gives it a new epoch. (An ESN SA re-syncs before its counter runs 2^32 past the
 *    epoch's first number, so the low 32 bits do not repeat within an epoch either.)
 *  - NIC -> station: the NIC never chooses an IV of its own. Answer k (0: the RMCP ACK, 1: the response) to the
 *    station packet with IV (epoch, s) gets IV = (epoch mod 2^30) || s || k in 30 + 32 + 2 bits. The NIC accepts each
 *    station packet once (the replay window of its epoch), so its IVs are as unique as the station's, whatever its
 *    own EEPROM counters say after a restore; and the station can tell which of its transmissions an answer
 *    belongs to (a replayed or misdirected answer is recognised as such).
 *  - NIC -> station, unsolicited (an ASF alert, docs/ALERTS.md): the NIC still chooses no IV of its own. A station
 *    packet the NIC accepted under live epoch E with IV (E, s) leaves two slots beside its answers: k = 2 and
 *    k = 3 of (E mod 2^30) || s || k, which no answer uses. An alert takes a slot of an accepted packet of the epoch
 *    it goes to, each slot at most once (the NIC forgets a slot as it uses it, and its free slots live in RAM with
 *    the epoch), and waits when none is free. So an alert IV repeats only if the NIC accepted one station IV twice
 *    or the station sent one twice: the conditions its answers already rely on, whatever the NIC's counters, its
 *    EEPROM or its epochs did (an epoch issued a second time after a restore carries new station numbers, so new
 *    slots). A retransmission is the same datagram, not a new IV.
 * Epochs stay below 2^30 (SYNC_EPOCH_MAX) so that the NIC's mapping is one-to-one.
 */
import { u32 } from '../common/bytes.js';

export const SYNC_EPOCH_MAX = 0x3fffffff;
/** Answers a NIC may send to one station packet (k = 0..3): the RMCP ACK and one response use 0 and 1. */
export const ANSWERS_PER_REQUEST = 4;
/** The k of an alert (an unsolicited NIC packet): 2 or 3, the slots answers leave free. */
export const K_ALERT_SLOTS = [2, 3] as const;

/** Is `k` an alert's (2 or 3) rather than an answer's (0: RMCP ACK, 1: response)? */
export function isAlertK(k: number): boolean {
  return k === 2 || k === 3;
}

/** IV offset in an ESP packet (after SPI and sequence number, RFC 4303 §2). */
const IV_OFFSET = 8;

/** The station's IV for ESP sequence number `seq` in sync epoch `epoch`. */
export function stationIv(epoch: number, seq: bigint): bigint {
  return (BigInt(epoch) << 32n) | (seq & 0xffffffffn);
}

/** The NIC's IV for its answer `k` to the station packet whose IV was (epoch, low). */
export function nicAnswerIv(epoch: number, low: number, k: number): bigint {
  return (BigInt(epoch & SYNC_EPOCH_MAX) << 34n) | (BigInt(low >>> 0) << 2n) | BigInt(k & 3);
}

/** The NIC's IV for an alert in slot `k` (2 or 3) of the station packet whose IV was (epoch, low). */
export function nicAlertIv(epoch: number, low: number, k: number): bigint {
  if (!isAlertK(k)) throw new RangeError(`an alert IV takes slot 2 or 3 of a station packet, got ${k}`);
  return nicAnswerIv(epoch, low, k);
}

/** The (epoch, low 32 bits) of a station packet's IV, read from the ESP packet (null if too short). */
export function stationIvParts(espPacket: Uint8Array): { epoch: number; low: number } | null {
  if (espPacket.length < IV_OFFSET + 8) return null;
  return { epoch: u32(espPacket, IV_OFFSET), low: u32(espPacket, IV_OFFSET + 4) };
}

/** The parts of a NIC answer's IV: the epoch's low 30 bits, the station packet's low 32 bits, and k. */
export function nicIvParts(espPacket: Uint8Array): { epoch30: number; low: number; k: number } | null {
  if (espPacket.length < IV_OFFSET + 8) return null;
  const hi = u32(espPacket, IV_OFFSET);
  const lo = u32(espPacket, IV_OFFSET + 4);
  return { epoch30: hi >>> 2, low: (((hi & 3) << 30) | (lo >>> 2)) >>> 0, k: lo & 3 };
}
