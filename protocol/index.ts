/**
 * Public surface of the shared protocol module: the IKEv2 subset (RFC 7296) the station and
 * the host agent speak, key derivation, the two-phase SA commit (DESIGN §2.4-2.5) and the
 * Wireshark key export.
 */
export { IkeInitiator, type InitiatorOptions, type InitiatorState } from './ike/ike-initiator.js';
export { IkeResponder, type ResponderOptions, type DatagramSource } from './ike/ike-responder.js';
export { DEFAULT_FLOOD_POLICY, type FloodPolicy } from './ike/cookie.js';
export type { IkeEffect } from './ike/effects.js';
export { DEFAULT_RETRANSMIT, giveUpAfterMs, type RetransmitPolicy } from './ike/retransmit.js';
export { ikev2DecryptionTableLine, espSaUatLines } from './ike/wireshark-uat.js';
export { describeMessage } from './ike/describe.js';
export { NOTIFY, type CommitId } from './ike/notify.js';
export { IKE_PORT } from './ike/constants.js';
export { StationCommit, HostCommit, commitIdOf, STATION_COMMIT_TABLE, HOST_COMMIT_TABLE } from './commit.js';
