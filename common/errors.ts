/**
 * Coded errors. Every error Lifeline raises carries a stable `code` (like undici's
 * `UND_ERR_*`) and a message that says what to do. Two classes, as h11 separates them:
 *  - `ProtocolError`: the peer or the input misbehaved (malformed packet, bad ICV, replay,
 *    corrupt EEPROM). Network input that fails this way is dropped and counted, never thrown
 *    through an event loop.
 *  - `UsageError`: local misuse (bad argument, illegal state transition requested locally).
 */
export type ErrorCode =
  // codec
  | 'E_SHORT' | 'E_LENGTH' | 'E_VERSION' | 'E_CLASS' | 'E_IANA' | 'E_TYPE' | 'E_RESERVED'
  // ESP / AH / replay
  | 'E_SPI' | 'E_REPLAY' | 'E_ICV' | 'E_PAD' | 'E_NEXT_HEADER' | 'E_SEQ_EXHAUSTED' | 'E_AH_ICV'
  // resynchronisation (wire/sync-frame.ts): a packet of an epoch that is over; a NIC not synced since it booted;
  // no epoch left to issue; a sync that did not complete
  | 'E_EPOCH' | 'E_UNSYNCED' | 'E_EPOCH_EXHAUSTED' | 'E_SYNC'
  // policy / firmware
  | 'E_REFUSED' | 'E_LINK_DOWN' | 'E_NIC_DOWN' | 'E_NO_SA' | 'E_POLICY'
  // EEPROM
  | 'E_EEPROM_CRC' | 'E_EEPROM_FOREIGN' | 'E_EEPROM_SIZE' | 'E_EEPROM_FULL' | 'E_EEPROM_TORN' | 'E_EEPROM_IO'
  // state machines
  | 'E_ILLEGAL_TRANSITION'
  // IPMI lanplus (firmware/ipmi/): a bad IPMI message checksum; an IPMI users record that does not decode
  | 'E_CHECKSUM' | 'E_IPMI_USERS'
  // IKE
  | 'E_IKE_SYNTAX' | 'E_IKE_AUTH' | 'E_IKE_PROPOSAL' | 'E_IKE_MSGID' | 'E_IKE_STATE' | 'E_IKE_TIMEOUT'
  // IKE: cookie rounds exhausted (§2.6); an IKE SA rekey refused or lost (§2.8); the peer busy (TEMPORARY_FAILURE)
  | 'E_IKE_COOKIE' | 'E_IKE_REKEY' | 'E_IKE_BUSY'
  // station / CLI / store
  | 'E_TIMEOUT' | 'E_USAGE' | 'E_NOT_FOUND' | 'E_STORE' | 'E_KEYFILE' | 'E_UNREACHABLE' | 'E_TABLE'
  | 'E_FENCED' | 'E_INTERNAL' | 'E_SPI_IN_USE'
  // an enrolment would give a NIC id the store holds to another NIC (another EEPROM serial, another emulator)
  | 'E_NIC_IDENTITY'
  // the station daemon took a request and was lost before answering: it may or may not have run
  | 'E_OUTCOME_UNKNOWN'
  // a NIC's command log failed its audit (a fleet's `audit`: the NIC's line names the first bad entry)
  | 'E_TAMPERED'
  // a daemon of this station already runs on this store
  | 'E_RUNNING'
  // a request to the station daemon's control API without its credential, or with a wrong one (HTTP 401)
  | 'E_AUTH'
  // the fleet page: a request whose Host is not a loopback name (HTTP 403); too many event streams at once (HTTP 503)
  | 'E_HOST' | 'E_BUSY';

export class LifelineError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The remote side or the input is at fault: drop and count. */
export class ProtocolError extends LifelineError {}

/** The local caller is at fault: report and stop. */
export class UsageError extends LifelineError {}

export function isLifelineError(e: unknown): e is LifelineError {
  return e instanceof LifelineError;
}
