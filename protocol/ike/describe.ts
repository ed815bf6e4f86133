/**
 * One-line descriptions of IKE messages in RFC 7296 notation, for logs and for the flow
 * comments of the tests: "IKE_AUTH { IDi, AUTH, N(INITIAL_CONTACT), SA, TSi, TSr }".
 * Encrypted messages are opened when the SK_e keys are given, else shown as "{ SK }".
 * KE/Nonce get i/r after the exchange role: Ni/KEi in requests, Nr/KEr in responses (§1.2, §1.3).
 */
import { isLifelineError } from '../../common/errors.js';
import { IKE_HEADER_LENGTH, PAYLOAD, exchangeName } from './constants.js';
import { decodeHeader, decodePayloadChain, fromInitiator, isResponse, type RawPayload } from './ike-message.js';
import { decodeDelete, decodeNotify } from './ike-payloads.js';
import { notifyName } from './notify.js';
import { payloadName } from './payload-helpers.js';
import { decodeInner, openSk } from './sk-payload.js';

function name(p: RawPayload, i: boolean): string {
  switch (p.type) {
    case PAYLOAD.KE:
      return i ? 'KEi' : 'KEr';
    case PAYLOAD.NONCE:
      return i ? 'Ni' : 'Nr';
    case PAYLOAD.NOTIFY:
      try {
        return `N(${notifyName(decodeNotify(p.body).notifyType)})`;
      } catch {
        return 'N(?)';
      }
    case PAYLOAD.DELETE:
      try {
        const d = decodeDelete(p.body);
        return d.protocol === 1 ? 'D(IKE)' : `D(ESP x${d.spis.length})`;
      } catch {
        return 'D(?)';
      }
    default:
      return payloadName(p.type);
  }
}

export function describeMessage(bytes: Uint8Array, keys?: { skEi: Uint8Array; skEr: Uint8Array }): string {
  try {
    const h = decodeHeader(bytes);
    const i = fromInitiator(h);
    let payloads = decodePayloadChain(h.nextPayload, bytes, IKE_HEADER_LENGTH, bytes.length);
    const sk = payloads.find((p) => p.type === PAYLOAD.SK);
    if (sk && keys) payloads = decodeInner(openSk(bytes, sk, i ? keys.skEi : keys.skEr));
    const list = payloads.map((p) => name(p, !isResponse(h))).join(', ');
    return `${exchangeName(h.exchange)} ${isResponse(h) ? 'response' : 'request'} #${h.messageId} { ${list} }`.replace('{  }', '{ }');
  } catch (e) {
    return `(undecodable: ${isLifelineError(e) ? e.code : String(e)})`;
  }
}
