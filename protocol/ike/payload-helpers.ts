/**
 * Small helpers the two IKE machines share to read decoded payload lists and to map error
 * Notify types (RFC 7296 §3.10.1) to Lifeline error codes.
 */
import { u32 } from '../../common/bytes.js';
import { ProtocolError, type ErrorCode } from '../../common/errors.js';
import { PAYLOAD } from './constants.js';
import { decodeNotify, type NotifyPayload } from './ike-payloads.js';
import type { RawPayload } from './ike-message.js';
import { NOTIFY, isErrorNotify, notifyName } from './notify.js';

export function spi4(n: number): Uint8Array {
  return new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

export function readSpi4(b: Uint8Array): number {
  if (b.length !== 4) throw new ProtocolError('E_IKE_SYNTAX', `expected a 4-octet ESP SPI, got ${b.length}`);
  return u32(b, 0);
}

const PAYLOAD_NAMES: Record<number, string> = Object.fromEntries(Object.entries(PAYLOAD).map(([k, v]) => [v, k]));

export function payloadName(t: number): string {
  return PAYLOAD_NAMES[t] ?? `payload ${t}`;
}

/** The body of the first payload of `type`; a missing payload is a syntax error (§2.21: INVALID_SYNTAX). */
export function need(payloads: RawPayload[], type: number): Uint8Array {
  const p = payloads.find((x) => x.type === type);
  if (!p) throw new ProtocolError('E_IKE_SYNTAX', `${payloadName(type)} payload missing`);
  return p.body;
}

export function maybe(payloads: RawPayload[], type: number): Uint8Array | undefined {
  return payloads.find((x) => x.type === type)?.body;
}

export function notifiesOf(payloads: RawPayload[]): NotifyPayload[] {
  return payloads.filter((p) => p.type === PAYLOAD.NOTIFY).map((p) => decodeNotify(p.body));
}

export function findNotify(ns: NotifyPayload[], type: number): NotifyPayload | undefined {
  return ns.find((n) => n.notifyType === type);
}

/** The first error-type Notify (types < 16384): in a response it means the request failed. */
export function firstError(ns: NotifyPayload[]): NotifyPayload | undefined {
  return ns.find((n) => isErrorNotify(n.notifyType));
}

export function errorCodeFor(notifyType: number): ErrorCode {
  switch (notifyType) {
    case NOTIFY.AUTHENTICATION_FAILED:
      return 'E_IKE_AUTH';
    case NOTIFY.NO_PROPOSAL_CHOSEN:
    case NOTIFY.INVALID_KE_PAYLOAD:
    case NOTIFY.TS_UNACCEPTABLE:
    case NOTIFY.NO_ADDITIONAL_SAS:
    case NOTIFY.SINGLE_PAIR_REQUIRED:
      return 'E_IKE_PROPOSAL';
    case NOTIFY.INVALID_SYNTAX:
    case NOTIFY.UNSUPPORTED_CRITICAL_PAYLOAD:
      return 'E_IKE_SYNTAX';
    case NOTIFY.CHILD_SA_NOT_FOUND:
      return 'E_NO_SA';
    case NOTIFY.TEMPORARY_FAILURE:
      return 'E_IKE_BUSY';
    default:
      return 'E_IKE_STATE';
  }
}

export function describeError(n: NotifyPayload): string {
  return `peer answered ${notifyName(n.notifyType)} (${n.notifyType})`;
}
