/**
 * PET Acknowledge (IPMI NetFn Sensor/Event 04h, command 17h): how a console tells a trap's sender it has the
 * event, so the sender stops retransmitting (catalogue §4.2). ASF itself defines no acknowledgement; Lifeline's
 * station sends this one under the SA, inside ESP (inner UDP dst 623), as FreeIPMI's `ipmi-pet --pet-acknowledge`
 * sends it in the clear: RMCP class 7, IPMI 1.5 session-less (auth type none, session 0), RMCP sequence FFh (no
 * RMCP ACK). tshark shows it as `PET Acknowledge` with `-o ipmi.dissect_bus_commands:TRUE`.
 *
 *   06 00 FF 07 | 00 00000000 00000000 13 | 20 10 D0 81 rqSeq<<2 17 | data (12) | chk2
 *
 * Request data, little-endian (FreeIPMI tmpl_cmd_pet_acknowledge_rq): sequence (2), local timestamp (4), event
 * source type, sensor device, sensor number, event data 1-3 — each copied from the PET it acknowledges.
 */
import { ProtocolError, UsageError } from '../common/errors.js';
import type { Pet } from './pet.js';

export const PET_ACK_LENGTH = 4 + 10 + 6 + 12 + 1;
const NETFN_SENSOR_EVENT = 0x04;
const CMD_PET_ACKNOWLEDGE = 0x17;
const BMC_SA = 0x20;
const REMOTE_SWID = 0x81;

export interface PetAck {
  sequence: number;
  timestamp: number;
  eventSource: number;
  sensorDevice: number;
  sensorNumber: number;
  eventData: [number, number, number];
  /** The IPMI requester's sequence number (6 bits). */
  rqSeq: number;
}

/** The acknowledgement's fields for `pet`. */
export function petAckFor(pet: Pet, rqSeq: number): PetAck {
  return {
    sequence: pet.sequence, timestamp: pet.timestamp, eventSource: pet.eventSource, sensorDevice: pet.sensorDevice,
    sensorNumber: pet.sensorNumber, eventData: [pet.eventData[0], pet.eventData[1], pet.eventData[2]], rqSeq: rqSeq & 0x3f,
  };
}

/** Does `ack` acknowledge `pet`? Every field it carries must match. */
export function acknowledges(ack: PetAck, pet: Pet): boolean {
  return ack.sequence === pet.sequence && ack.timestamp === pet.timestamp && ack.eventSource === pet.eventSource
    && ack.sensorDevice === pet.sensorDevice && ack.sensorNumber === pet.sensorNumber
    && ack.eventData[0] === pet.eventData[0] && ack.eventData[1] === pet.eventData[1] && ack.eventData[2] === pet.eventData[2];
}

function checksum(b: Uint8Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += b[i];
  return (0x100 - (s & 0xff)) & 0xff;
}

export function encodePetAck(a: PetAck): Uint8Array {
  if (!Number.isInteger(a.sequence) || a.sequence < 0 || a.sequence > 0xffff) throw new UsageError('E_USAGE', `PET sequence must be 0..65535, got ${a.sequence}`);
  const out = new Uint8Array(PET_ACK_LENGTH);
  out.set([0x06, 0x00, 0xff, 0x07], 0); // RMCP 1.0, sequence FFh (no RMCP ACK), class IPMI
  // IPMI 1.5 session header: auth type none, session sequence 0, session ID 0, message length
  out[14 - 1] = 6 + 12 + 1;
  const m = 14;
  out[m] = BMC_SA;
  out[m + 1] = NETFN_SENSOR_EVENT << 2;
  out[m + 2] = checksum(out, m, m + 2);
  out[m + 3] = REMOTE_SWID;
  out[m + 4] = (a.rqSeq & 0x3f) << 2;
  out[m + 5] = CMD_PET_ACKNOWLEDGE;
  const d = m + 6;
  out[d] = a.sequence & 0xff;
  out[d + 1] = a.sequence >> 8;
  const t = a.timestamp >>> 0;
  out.set([t & 0xff, (t >>> 8) & 0xff, (t >>> 16) & 0xff, t >>> 24], d + 2);
  out.set([a.eventSource, a.sensorDevice, a.sensorNumber, ...a.eventData], d + 6);
  out[d + 12] = checksum(out, m + 3, d + 12);
  return out;
}

/** Decode a PET Acknowledge request (the whole RMCP datagram). ProtocolError for anything else. */
export function decodePetAck(b: Uint8Array): PetAck {
  if (b.length !== PET_ACK_LENGTH) throw new ProtocolError('E_LENGTH', `PET Acknowledge of ${b.length} bytes, ${PET_ACK_LENGTH} expected; dropped`);
  if (b[0] !== 0x06 || b[3] !== 0x07) throw new ProtocolError('E_CLASS', 'not an RMCP 1.0 IPMI message; dropped');
  if (b[4] !== 0x00 || b[9] | b[10] | b[11] | b[12]) throw new ProtocolError('E_TYPE', 'PET Acknowledge must be session-less (auth type none, session 0); dropped');
  if (b[13] !== 19) throw new ProtocolError('E_LENGTH', `IPMI message length ${b[13]}, 19 expected; dropped`);
  const m = 14;
  if (b[m] !== BMC_SA || b[m + 1] >> 2 !== NETFN_SENSOR_EVENT || b[m + 5] !== CMD_PET_ACKNOWLEDGE) throw new ProtocolError('E_TYPE', 'IPMI message is not PET Acknowledge (NetFn 04h, cmd 17h); dropped');
  if (checksum(b, m, m + 2) !== b[m + 2] || checksum(b, m + 3, m + 18) !== b[m + 18]) throw new ProtocolError('E_CHECKSUM', 'PET Acknowledge checksum wrong; dropped');
  const d = m + 6;
  return {
    sequence: b[d] | (b[d + 1] << 8),
    timestamp: (b[d + 2] | (b[d + 3] << 8) | (b[d + 4] << 16) | (b[d + 5] << 24)) >>> 0,
    eventSource: b[d + 6], sensorDevice: b[d + 7], sensorNumber: b[d + 8],
    eventData: [b[d + 9], b[d + 10], b[d + 11]], rqSeq: b[m + 4] >> 2,
  };
}
