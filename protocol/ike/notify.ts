/**
 * Notify Message Types (RFC 7296 §3.10.1) and the private-use commit notifies of DESIGN §2.5.
 *
 * Types below 16384 are errors, 16384 and above status (§3.10.1). An unrecognized *error* in a
 * response means the request failed; unrecognized errors in requests and unrecognized status
 * types anywhere are ignored.
 */
import { ProtocolError } from '../../common/errors.js';
import { putU32, u32 } from '../../common/bytes.js';

export const NOTIFY = {
  UNSUPPORTED_CRITICAL_PAYLOAD: 1,
  INVALID_IKE_SPI: 4,
  INVALID_MAJOR_VERSION: 5,
  INVALID_SYNTAX: 7,
  INVALID_MESSAGE_ID: 9,
  INVALID_SPI: 11,
  NO_PROPOSAL_CHOSEN: 14,
  INVALID_KE_PAYLOAD: 17,
  AUTHENTICATION_FAILED: 24,
  SINGLE_PAIR_REQUIRED: 34,
  NO_ADDITIONAL_SAS: 35,
  TS_UNACCEPTABLE: 38,
  TEMPORARY_FAILURE: 43,
  CHILD_SA_NOT_FOUND: 44,
  INITIAL_CONTACT: 16384,
  COOKIE: 16390,
  USE_TRANSPORT_MODE: 16391,
  REKEY_SA: 16393,
  /** Lifeline two-phase commit (DESIGN §2.5), IANA private-use status range 40960-65535. */
  SA_READY: 40960,
  SA_ACK: 40961,
  SA_CONFIRM: 40962,
  /**
   * Lifeline: "I run the two-phase commit" (status, no data), in the IKE_AUTH request and, when the
   * responder runs it too, in its response. Without it on both sides the commit is off for that
   * IKE SA and Child SAs are in force when their exchange completes, as in plain IKEv2.
   * Not 40963: strongSwan uses 40960-40969 itself (ME_ENDPOINT = 40963, whose data it checks, so
   * charon answered an IKE_AUTH carrying an empty 40963 with INVALID_SYNTAX in the interop test).
   * 45056 = 0xB000, clear of that block.
   */
  COMMIT_SUPPORTED: 45056,
} as const;

export const FIRST_STATUS_TYPE = 16384;

export function isErrorNotify(type: number): boolean {
  return type < FIRST_STATUS_TYPE;
}

export function notifyName(type: number): string {
  for (const [k, v] of Object.entries(NOTIFY)) if (v === type) return k;
  return String(type);
}

/**
 * Names one child SA in SA_READY / SA_ACK / SA_CONFIRM, so a stale or replayed notify can never
 * commit a different SA than the one it was sent for (12 octets of Notification Data):
 *   generation (4) | SPI toNic (4, the host's inbound ESP SPI) | SPI fromNic (4, the station's)
 */
export interface CommitId {
  generation: number;
  spiToNic: number;
  spiFromNic: number;
}

export const COMMIT_DATA_LENGTH = 12;

export function encodeCommitId(id: CommitId): Uint8Array {
  const b = new Uint8Array(COMMIT_DATA_LENGTH);
  putU32(b, 0, id.generation);
  putU32(b, 4, id.spiToNic);
  putU32(b, 8, id.spiFromNic);
  return b;
}

export function decodeCommitId(data: Uint8Array): CommitId {
  if (data.length !== COMMIT_DATA_LENGTH) {
    throw new ProtocolError('E_IKE_SYNTAX', `commit notify data must be 12 octets, got ${data.length}`);
  }
  const id = { generation: u32(data, 0), spiToNic: u32(data, 4), spiFromNic: u32(data, 8) };
  if (id.generation === 0 || id.spiToNic === 0 || id.spiFromNic === 0) {
    throw new ProtocolError('E_IKE_SYNTAX', 'commit notify names generation 0 or SPI 0');
  }
  return id;
}

export function sameCommitId(a: CommitId | null | undefined, b: CommitId | null | undefined): boolean {
  return !!a && !!b && a.generation === b.generation && a.spiToNic === b.spiToNic && a.spiFromNic === b.spiFromNic;
}

export function commitIdString(id: CommitId): string {
  return `gen ${id.generation} spi ${id.spiToNic.toString(16).padStart(8, '0')}/${id.spiFromNic.toString(16).padStart(8, '0')}`;
}
