/**
 * The BMC side of RMCP+ session set-up (IPMI v2.0 §13.15-13.24; cat. §3, §4), one function per message:
 *
 *   Open Session Request  -->  <-- Open Session Response   (half-open, stage 'opened')
 *   RAKP 1                -->  <-- RAKP 2                  (stage 'challenged')
 *   RAKP 3                -->  <-- RAKP 4                  (active, at USER privilege)
 *
 * Refusals are answered with the status code the spec gives them and counted by reason: cipher suite 0 and
 * every suite but 3 and 17 (11h), null, unknown and disabled users (0Dh, the same for all three and without
 * an HMAC, so no password oracle for names that do not exist), roles (09h/0Ah), a RAKP 3 that does not verify
 * (0Fh: the console does not know the password), the session limit (01h). Set-up messages for no known
 * session, or from another source than the one that opened it, are dropped without an answer: a blind flood
 * gets nothing back.
 */
import { ProtocolError } from '../../common/errors.js';
import { AesCbc128 } from './aes-cbc-128.js';
import {
  findCipherSuite, isCipherZeroFamily, AUTH_RAKP_NONE, type CipherSuiteId,
} from './cipher-suites.js';
import { PAYLOAD, PRIV, RAKP_STATUS, privilegeName, type IpmiCounters, type IpmiDrop, type IpmiEndpoint, type IpmiRefusal } from './ipmi-types.js';
import {
  decodeOpenSessionRequest, decodeRakp1, decodeRakp3, encodeOpenSessionResponse, encodeRakp2, encodeRakp4,
  type OpenSessionRequest, type Rakp1, type Rakp3,
} from './rakp-messages.js';
import {
  additionalKey, codesEqual, rakp2AuthCode, rakp3AuthCode, rakp4Icv, sessionIntegrityKey, type RakpTranscript,
} from './rakp-keys.js';
import { SequenceWindow } from './sequence-window.js';
import type { HalfOpenSession, SessionTable } from './session-table.js';
import type { UserDirectory } from './users.js';
import { hex32 } from './_le.js';

export interface HandshakeContext {
  readonly table: SessionTable;
  readonly users: UserDirectory;
  readonly guid: Uint8Array;
  readonly suites: readonly CipherSuiteId[];
  readonly counters: IpmiCounters;
  random(n: number): Uint8Array;
  refuse(reason: IpmiRefusal, now: number, fields: Record<string, unknown>): void;
  drop(reason: IpmiDrop): void;
  info(msg: string, fields: Record<string, unknown>): void;
  evicted(sessions: HalfOpenSession[]): void;
}

export interface SetupReply { payloadType: number; payload: Uint8Array }

const peerText = (p: IpmiEndpoint) => `${p.address}:${p.port}`;
const sameEndpoint = (a: IpmiEndpoint, b: IpmiEndpoint) => a.address === b.address && a.port === b.port;

function decodeOr<T>(ctx: HandshakeContext, decode: (p: Uint8Array) => T, p: Uint8Array): T | null {
  try {
    return decode(p);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    ctx.drop('malformed');
    return null;
  }
}

/** Open Session Request (§13.17) -> Open Session Response (§13.18). */
export function openSession(ctx: HandshakeContext, from: IpmiEndpoint, p: Uint8Array, now: number): SetupReply | null {
  const rq = decodeOr<OpenSessionRequest>(ctx, decodeOpenSessionRequest, p);
  if (!rq) return null;
  const reply = (status: number) => ({ payloadType: PAYLOAD.openSessionResponse, payload: encodeOpenSessionResponse(rq.tag, status, rq.sidM) });
  const fields = { from: peerText(from), auth: rq.auth, integrity: rq.integrity, confidentiality: rq.confidentiality };
  if (rq.sidM === 0 || rq.auth === null || rq.integrity === null || rq.confidentiality === null) {
    ctx.refuse('bad-request', now, { ...fields, why: rq.sidM === 0 ? 'remote console session ID 0' : 'malformed algorithm record' });
    return reply(rq.sidM === 0 ? RAKP_STATUS.invalidSessionId : RAKP_STATUS.illegalParameter);
  }
  if (rq.requestedPrivilege > PRIV.administrator) {
    ctx.refuse('role', now, { ...fields, requested: rq.requestedPrivilege });
    return reply(RAKP_STATUS.invalidRole);
  }
  const suite = findCipherSuite(ctx.suites, rq.auth, rq.integrity, rq.confidentiality);
  if (!suite) {
    const zero = rq.auth === AUTH_RAKP_NONE;
    ctx.refuse(zero ? 'cipher-0' : 'cipher-suite', now, { ...fields, weak: isCipherZeroFamily(rq.auth, rq.integrity, rq.confidentiality) });
    return reply(RAKP_STATUS.noCipherSuiteMatch);
  }
  if (ctx.table.activeCount >= ctx.table.limits.maxActive) {
    ctx.refuse('session-limit', now, { from: peerText(from), active: ctx.table.activeCount });
    return reply(RAKP_STATUS.insufficientResources);
  }
  const sidC = ctx.table.allocateSid((n) => ctx.random(n));
  if (sidC === null) return reply(RAKP_STATUS.insufficientResources);
  ctx.evicted(ctx.table.addOpened({ stage: 'opened', sidC, sidM: rq.sidM, suite, peer: { ...from }, since: now }));
  ctx.counters.sessions.opened++;
  // Byte 2 must be a real level even when 0 ("highest matching") was asked: FreeIPMI refuses 00h (cat. §3.2).
  const maxPrivilege = rq.requestedPrivilege === 0 ? PRIV.administrator : rq.requestedPrivilege;
  return {
    payloadType: PAYLOAD.openSessionResponse,
    payload: encodeOpenSessionResponse(rq.tag, RAKP_STATUS.ok, rq.sidM, { maxPrivilege, sidC, suite }),
  };
}

/** The half-open session a RAKP 1 / RAKP 3 names, if it exists and came from the same source; else dropped. */
function halfOpenFor(ctx: HandshakeContext, sidC: number, from: IpmiEndpoint): HalfOpenSession | null {
  const s = ctx.table.halfOpen(sidC);
  if (!s) {
    ctx.drop('unknown-session');
    return null;
  }
  if (!sameEndpoint(s.peer, from)) {
    ctx.drop('wrong-source');
    return null;
  }
  return s;
}

/** RAKP Message 1 (§13.20) -> RAKP Message 2 (§13.21). */
export function rakp1(ctx: HandshakeContext, from: IpmiEndpoint, p: Uint8Array, now: number): SetupReply | null {
  const rq = decodeOr<Rakp1>(ctx, decodeRakp1, p);
  if (!rq) return null;
  const s = halfOpenFor(ctx, rq.sidC, from);
  if (!s) return null;
  const fail = (status: number, reason: IpmiRefusal, why: string) => {
    ctx.table.removeHalfOpen(s.sidC);
    ctx.refuse(reason, now, { from: peerText(from), user: printable(rq.userName), why });
    return { payloadType: PAYLOAD.rakp2, payload: encodeRakp2(rq.tag, status, s.sidM) };
  };
  if (rq.nameLength > 16 || 28 + rq.nameLength > p.length) {
    return fail(RAKP_STATUS.invalidNameLength, 'bad-request', `user name length ${rq.nameLength}`);
  }
  if (rq.nameLength === 0) return fail(RAKP_STATUS.unauthorizedName, 'null-user', 'null user name (anonymous login is disabled)');
  const user = ctx.users.byName(rq.userName);
  if (!user) return fail(RAKP_STATUS.unauthorizedName, 'unknown-user', 'no such user');
  if (!user.user.enabled) return fail(RAKP_STATUS.unauthorizedName, 'disabled-user', 'user is disabled');
  const requested = rq.roleM & 0x0f;
  const nameOnly = (rq.roleM & 0x10) !== 0;
  if (requested <= PRIV.callback) return fail(RAKP_STATUS.unauthorizedRole, 'role', `role ${privilegeName(requested)} cannot run a session`);
  if (requested > PRIV.administrator) return fail(RAKP_STATUS.invalidRole, 'role', `role ${privilegeName(requested)} is not offered`);
  // Username/privilege lookup (bit 4 clear) only finds the user if the role is within its limit; name-only
  // lookup caps the session at the lower of the two (§13.20; OpenBMC answers 0Dh for the former too).
  if (!nameOnly && requested > user.privilege) {
    return fail(RAKP_STATUS.unauthorizedName, 'role', `role ${privilegeName(requested)} above the user's ${user.user.privilege}`);
  }
  const transcript: RakpTranscript = {
    sidM: s.sidM, sidC: s.sidC, rM: rq.rM, rC: ctx.random(16), guid: ctx.guid, roleM: rq.roleM, userName: rq.userName,
  };
  s.rakp = { transcript, user, maxPrivilege: Math.min(requested, user.privilege) };
  ctx.evicted(ctx.table.challenge(s, now));
  const authCode = rakp2AuthCode(s.suite, user.key, transcript);
  return { payloadType: PAYLOAD.rakp2, payload: encodeRakp2(rq.tag, RAKP_STATUS.ok, s.sidM, { rC: transcript.rC, guid: ctx.guid, authCode }) };
}

/** RAKP Message 3 (§13.22) -> RAKP Message 4 (§13.23); a verified RAKP 3 activates the session. */
export function rakp3(ctx: HandshakeContext, from: IpmiEndpoint, p: Uint8Array, now: number): SetupReply | null {
  const rq = decodeOr<Rakp3>(ctx, decodeRakp3, p);
  if (!rq) return null;
  const done = ctx.table.getActive(rq.sidC);
  if (done && done.rakp3Code && sameEndpoint(done.peer, from) && codesEqual(done.rakp3Code, rq.authCode)) {
    // The console did not get our RAKP 4 and sent RAKP 3 again: answer it again, nothing else changes.
    return { payloadType: PAYLOAD.rakp4, payload: encodeRakp4(rq.tag, RAKP_STATUS.ok, done.sidM, done.rakp4Icv) };
  }
  const s = halfOpenFor(ctx, rq.sidC, from);
  if (!s) return null;
  if (s.stage !== 'challenged' || !s.rakp) {
    ctx.drop('unknown-session'); // RAKP 3 before RAKP 1: no such exchange
    return null;
  }
  const { transcript, user, maxPrivilege } = s.rakp;
  const fail = (status: number, reason: IpmiRefusal, why: string) => {
    ctx.table.removeHalfOpen(s.sidC);
    ctx.refuse(reason, now, { from: peerText(from), user: user.user.name, why });
    return { payloadType: PAYLOAD.rakp4, payload: encodeRakp4(rq.tag, status, s.sidM) };
  };
  if (rq.status !== RAKP_STATUS.ok) {
    ctx.table.removeHalfOpen(s.sidC);
    ctx.drop('rakp3-error');
    return null;
  }
  if (!codesEqual(rakp3AuthCode(s.suite, user.key, transcript), rq.authCode)) {
    return fail(RAKP_STATUS.invalidIntegrityCheckValue, 'wrong-password', 'RAKP 3 code does not verify (wrong password)');
  }
  if (ctx.table.activeCount >= ctx.table.limits.maxActive) {
    return fail(RAKP_STATUS.insufficientResources, 'session-limit', `${ctx.table.activeCount} sessions are active`);
  }
  // K_G is K_UID: this BMC has no BMC key (GCAC reports K_G status 0) (§13.31).
  const sik = sessionIntegrityKey(s.suite, user.key, transcript);
  const icv = rakp4Icv(s.suite, sik, transcript);
  ctx.table.activate({
    sidC: s.sidC, sidM: s.sidM, suite: s.suite, peer: s.peer, user,
    privilege: PRIV.user, maxPrivilege,
    k1: additionalKey(s.suite, sik, 1), aes: new AesCbc128(additionalKey(s.suite, sik, 2)),
    window: new SequenceWindow(), outSeq: 0, lastActivity: now, activatedAt: now,
    rakp3Code: rq.authCode, rakp4Icv: icv,
  });
  ctx.counters.sessions.activated++;
  ctx.info('IPMI session activated', {
    sessionId: hex32(s.sidC), user: user.user.name, from: peerText(from), cipherSuite: s.suite.id, maxPrivilege: privilegeName(maxPrivilege),
  });
  return { payloadType: PAYLOAD.rakp4, payload: encodeRakp4(rq.tag, RAKP_STATUS.ok, s.sidM, icv) };
}

/** A user name from the network, safe to log: printable ASCII kept, anything else as \xNN, at most 16 bytes. */
function printable(b: Uint8Array): string {
  let s = '';
  for (const c of b.subarray(0, 16)) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  return s;
}
