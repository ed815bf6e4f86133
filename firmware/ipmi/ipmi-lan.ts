/**
 * IPMI v2.0 over LAN, RMCP+ ("lanplus"), BMC side, as one sans-I/O machine (DESIGN §9; IPMI v2.0 chapter 13;
 * ../shared/reference/ipmi-rmcpplus-catalogue.md). The caller hands in every RMCP class-7 datagram that
 * arrives on UDP 623 and performs the effects that come back: datagrams to send, host commands to apply to the
 * emulated host, log lines. Time is an argument (`now`, ms); randomness (session IDs, R_C, IVs) is injected;
 * deadlines are asked for with pollTimeout() and served with handleTimeout(now).
 *
 * Secure defaults: cipher suites 3 and 17 only; cipher suite 0, null and anonymous users and IPMI 1.5 sessions
 * refused and counted; at most 4 active sessions, closed after 60 s idle; half-open sessions bounded apart from
 * active ones (session-table.ts) so spoofed Open Session / RAKP floods cannot lock a console out.
 *
 * In-session receive order (STYLE.md rule 3, §13.28): session lookup -> source -> sequence window check ->
 * AuthCode verify -> decrypt -> window mark -> command. Bad input never throws: it is dropped and counted.
 */
import { ProtocolError, UsageError } from '../../common/errors.js';
import { BootOptions } from './boot-options.js';
import { CIPHER_SUITES, DEFAULT_CIPHER_SUITES, type CipherSuiteId } from './cipher-suites.js';
import { APP_COMMANDS, IPMI15_SESSION_COMMANDS } from './commands-app.js';
import { CHASSIS_COMMANDS } from './commands-chassis.js';
import { STORAGE_COMMANDS } from './commands-storage.js';
import { commandKey, type BmcState, type CommandContext, type CommandSpec, type DeviceIdentity } from './command-context.js';
import { openSession, rakp1, rakp3, type HandshakeContext, type SetupReply } from './handshake.js';
import { decodeIpmiRequest, encodeIpmiResponse, type IpmiRequest } from './ipmi-message.js';
import {
  CC, PAYLOAD, newCounters, privilegeName, type IpmiCounters, type IpmiDrop, type IpmiEffect, type IpmiEndpoint,
  type IpmiHostView, type IpmiRefusal,
} from './ipmi-types.js';
import { LogLimiter } from './log-limiter.js';
import { decodeSessionPacket, encodeIpmi15Sessionless, encodeRmcpPlus, verifyIntegrity, type SessionPacket } from './rmcpplus-codec.js';
import { DEFAULT_LIMITS, SessionTable, type ActiveSession, type HalfOpenSession, type SessionLimits } from './session-table.js';
import { UserDirectory, type IpmiUser } from './users.js';
import { hex32 } from './_le.js';

export interface IpmiLanOptions {
  /** The BMC's users (at most 8; users.ts). */
  users: readonly IpmiUser[];
  /** The system GUID (16 bytes): RAKP 2's GUID_C and Get System GUID. */
  guid: Uint8Array;
  /** Get Device ID fields; defaults: device 20h, revision 1, firmware 1.00, manufacturer 0, product 1. */
  device?: Partial<DeviceIdentity>;
  /** n random bytes (session IDs, BMC random numbers, AES-CBC IVs): a CSPRNG in the emulator, seeded in tests. */
  random: (n: number) => Uint8Array;
  /** Offered cipher suites, a non-empty subset of [3, 17] (default both). */
  cipherSuites?: readonly CipherSuiteId[];
  limits?: Partial<SessionLimits>;
}

export type { IpmiEffect, IpmiHostView, IpmiCounters, IpmiEndpoint } from './ipmi-types.js';

const DEFAULT_DEVICE: DeviceIdentity = { deviceId: 0x20, deviceRevision: 1, firmwareMajor: 1, firmwareMinor: 0x00, manufacturerId: 0, productId: 1 };
const COMMANDS: ReadonlyMap<number, CommandSpec> = new Map([...APP_COMMANDS, ...CHASSIS_COMMANDS, ...STORAGE_COMMANDS]);
const SETUP_PAYLOADS: ReadonlySet<number> = new Set([PAYLOAD.openSessionRequest, PAYLOAD.rakp1, PAYLOAD.rakp3]);
/** Drops worth a (rate-limited) warning: someone may be attacking a session. */
const LOGGED_DROPS: ReadonlySet<IpmiDrop> = new Set(['integrity', 'replay', 'wrong-source']);

const REFUSAL_TEXT: Readonly<Record<IpmiRefusal, string>> = {
  'cipher-0': 'refused cipher suite 0 (RAKP-none would let any password in); use -C 3 or -C 17',
  'cipher-suite': 'refused a cipher suite this BMC does not offer (only 3 and 17)',
  'null-user': 'refused a null user name (anonymous login is disabled)',
  'unknown-user': 'refused an unknown user name',
  'disabled-user': 'refused a disabled user',
  role: 'refused a role the user cannot have',
  'wrong-password': 'refused a session: RAKP 3 did not verify (wrong password)',
  'ipmi-1.5': 'refused IPMI 1.5 session traffic; use lanplus (ipmitool -I lanplus, FreeIPMI -D LAN_2_0)',
  'session-limit': 'refused a session: the active-session limit is reached',
  privilege: 'refused a request above the session privilege',
  'bad-request': 'refused a malformed session set-up request',
};

function assertOptions(o: IpmiLanOptions): void {
  if (typeof o !== 'object' || o === null) throw new UsageError('E_USAGE', 'IpmiLan needs options { users, guid, random }');
  if (!(o.guid instanceof Uint8Array) || o.guid.length !== 16) throw new UsageError('E_USAGE', 'IpmiLan guid must be 16 bytes');
  if (typeof o.random !== 'function') throw new UsageError('E_USAGE', 'IpmiLan random must be a function (n) => Uint8Array of n random bytes');
  const suites = o.cipherSuites ?? DEFAULT_CIPHER_SUITES;
  if (!Array.isArray(suites) || suites.length === 0 || suites.some((s) => !(s in CIPHER_SUITES))) {
    throw new UsageError('E_USAGE', `IpmiLan cipherSuites must be a non-empty subset of [3, 17], got ${JSON.stringify(suites)}`);
  }
  for (const [k, v] of Object.entries(o.limits ?? {})) {
    if (!(k in DEFAULT_LIMITS) || !Number.isInteger(v) || (v as number) < 1) {
      throw new UsageError('E_USAGE', `IpmiLan limits.${k} must be a positive integer (one of ${Object.keys(DEFAULT_LIMITS).join(', ')})`);
    }
  }
  const d = { ...DEFAULT_DEVICE, ...o.device };
  const byte = (n: string, v: number, max = 0xff) => {
    if (!Number.isInteger(v) || v < 0 || v > max) throw new UsageError('E_USAGE', `IpmiLan device.${n} must be an integer 0..${max}, got ${v}`);
  };
  byte('deviceId', d.deviceId);
  byte('deviceRevision', d.deviceRevision, 0x0f);
  byte('firmwareMajor', d.firmwareMajor, 0x7f);
  byte('firmwareMinor', d.firmwareMinor);
  byte('manufacturerId', d.manufacturerId, 0xfffff);
  byte('productId', d.productId, 0xffff);
  if (d.auxFirmwareRevision !== undefined && (!(d.auxFirmwareRevision instanceof Uint8Array) || d.auxFirmwareRevision.length !== 4)) {
    throw new UsageError('E_USAGE', 'IpmiLan device.auxFirmwareRevision must be 4 bytes');
  }
}

export class IpmiLan {
  readonly counters: IpmiCounters = newCounters();
  private readonly bmc: BmcState;
  private readonly table: SessionTable;
  private readonly random: (n: number) => Uint8Array;
  private readonly limiter = new LogLimiter();
  /** The effects of the call in progress. */
  private out: IpmiEffect[] = [];
  private now = 0;

  constructor(o: IpmiLanOptions) {
    assertOptions(o);
    this.random = (n) => {
      const r = o.random(n);
      if (!(r instanceof Uint8Array) || r.length !== n) throw new UsageError('E_USAGE', `IpmiLan random(${n}) must return ${n} bytes`);
      return r;
    };
    this.table = new SessionTable({ ...DEFAULT_LIMITS, ...o.limits });
    this.bmc = {
      users: new UserDirectory(o.users),
      guid: Uint8Array.from(o.guid),
      device: Object.freeze({ ...DEFAULT_DEVICE, ...o.device }),
      channel: 1,
      suites: [...(o.cipherSuites ?? DEFAULT_CIPHER_SUITES)],
      table: this.table,
      boot: new BootOptions(),
      powerOnViaIpmi: false,
    };
  }

  /** Handles one datagram (RMCP header first, class 7) from `from`; returns the effects to perform in order. */
  receive(from: IpmiEndpoint, datagram: Uint8Array, now: number, host: IpmiHostView): IpmiEffect[] {
    this.begin(now);
    this.counters.received++;
    let pkt: SessionPacket;
    try {
      pkt = decodeSessionPacket(datagram);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.drop(e.code === 'E_TYPE' ? 'payload-type' : 'malformed');
      return this.end();
    }
    if (pkt.format === 'ipmi-1.5') this.receive15(from, pkt, host);
    else if (SETUP_PAYLOADS.has(pkt.payloadType)) this.receiveSetup(from, pkt);
    else if (pkt.payloadType !== PAYLOAD.ipmi) this.drop('payload-type');
    else if (pkt.sessionId === 0) this.receiveSessionless(from, pkt, host);
    else this.receiveInSession(from, datagram, pkt, host);
    return this.end();
  }

  /**
   * New users (the NIC's EEPROM was written): every session ends, active and half-open, since its user may be gone
   * or its password changed; the next set-up sees the new users. Bad users are a UsageError and change nothing.
   */
  setUsers(users: readonly IpmiUser[], now: number): IpmiEffect[] {
    const directory = new UserDirectory(users);
    this.begin(now);
    this.bmc.users = directory;
    const { active, halfOpen } = this.table.clear();
    for (const s of active) {
      this.counters.sessions.closed++;
      this.out.push({ kind: 'log', level: 'info', msg: 'IPMI session closed', fields: { sessionId: hex32(s.sidC), user: s.user.user.name, by: 'users changed' } });
    }
    this.out.push({ kind: 'log', level: 'info', msg: 'IPMI users replaced', fields: { users: directory.size, sessionsClosed: active.length, halfOpenDropped: halfOpen } });
    return this.end();
  }

  /** Expires half-open sessions and closes idle ones whose deadline is at or before `now`. */
  handleTimeout(now: number): IpmiEffect[] {
    this.begin(now);
    return this.end();
  }

  /** The next deadline (ms, same clock as `now`), or null when no session exists. */
  pollTimeout(): number | null {
    return this.table.nextDeadline();
  }

  status(): Record<string, unknown> {
    const sessions = [...this.table.activeSessions()].map((s) => ({
      sessionId: hex32(s.sidC), user: s.user.user.name, peer: `${s.peer.address}:${s.peer.port}`, cipherSuite: s.suite.id,
      privilege: privilegeName(s.privilege), maxPrivilege: privilegeName(s.maxPrivilege), activatedAt: s.activatedAt, lastActivity: s.lastActivity,
    }));
    return {
      cipherSuites: [...this.bmc.suites],
      users: this.bmc.users.size,
      sessions,
      halfOpen: this.table.halfOpenCount,
      limits: { ...this.table.limits },
      bootFlags: this.bmc.boot.describe(),
      counters: structuredClone(this.counters),
    };
  }

  /** Sessions active now (the emulator's /metrics: firmware/nic-totals.ts). */
  get activeSessions(): number {
    return this.table.activeCount;
  }

  // ---------------------------------------------------------------- per-call bookkeeping

  private begin(now: number): void {
    this.out = [];
    this.now = now;
    const { halfOpen, idle } = this.table.expire(now);
    this.counters.sessions.halfOpenExpired += halfOpen.length;
    for (const s of idle) {
      this.counters.sessions.idleClosed++;
      this.out.push({ kind: 'log', level: 'info', msg: 'IPMI session closed', fields: { sessionId: hex32(s.sidC), user: s.user.user.name, by: 'idle timeout' } });
    }
  }

  private end(): IpmiEffect[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  private send(to: IpmiEndpoint, bytes: Uint8Array): void {
    this.counters.sent++;
    this.out.push({ kind: 'send', to: { address: to.address, port: to.port }, bytes });
  }

  private drop(reason: IpmiDrop, fields: Record<string, unknown> = {}): void {
    this.counters.dropped[reason]++;
    if (LOGGED_DROPS.has(reason)) this.limited(`drop:${reason}`, 'warn', `IPMI datagram dropped: ${reason}`, fields);
  }

  private refuse(reason: IpmiRefusal, fields: Record<string, unknown>): void {
    this.counters.refused[reason]++;
    this.limited(`refuse:${reason}`, 'warn', `IPMI ${REFUSAL_TEXT[reason]}`, { reason, ...fields });
  }

  private limited(key: string, level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): void {
    const line = this.limiter.line(key, this.now, level, msg, fields);
    if (line) this.out.push(line);
  }

  private closeSession(sid: number, by: string): void {
    const s = this.table.closeActive(sid);
    if (!s) return;
    this.counters.sessions.closed++;
    this.out.push({ kind: 'log', level: 'info', msg: 'IPMI session closed', fields: { sessionId: hex32(sid), user: s.user.user.name, by } });
  }

  // ---------------------------------------------------------------- IPMI 1.5 framing

  /**
   * IPMI 1.5 framing: only the sessionless Get Channel Authentication Capabilities that every client sends
   * first (cat. §1.2) and Get Channel Cipher Suites are served. Any IPMI 1.5 session traffic (a session ID, an
   * AuthCode, Get Session Challenge, Activate Session) is refused: this BMC has no IPMI 1.5 sessions.
   */
  private receive15(from: IpmiEndpoint, pkt: SessionPacket & { format: 'ipmi-1.5' }, host: IpmiHostView): void {
    if (pkt.authType !== 0 || pkt.sessionId !== 0 || pkt.sequence !== 0) {
      this.refuse('ipmi-1.5', { from: `${from.address}:${from.port}`, why: 'IPMI 1.5 session packet' });
      return;
    }
    const answer = this.sessionlessAnswer(from, pkt.message, host);
    if (answer) this.send(from, encodeIpmi15Sessionless(answer));
  }

  /** RMCP+ payload type 00h with session ID 0: the pre-session Get Channel Cipher Suites of ipmitool (cat. §2.2). */
  private receiveSessionless(from: IpmiEndpoint, pkt: SessionPacket & { format: 'rmcp+' }, host: IpmiHostView): void {
    if (pkt.authenticated || pkt.encrypted || pkt.sequence !== 0 || pkt.trailer.length !== 0) {
      this.drop('malformed');
      return;
    }
    const answer = this.sessionlessAnswer(from, pkt.payload, host);
    if (answer) this.send(from, encodeRmcpPlus({ payloadType: PAYLOAD.ipmi, sessionId: 0, sequence: 0, payload: answer, encrypted: false }));
  }

  private sessionlessAnswer(from: IpmiEndpoint, message: Uint8Array, host: IpmiHostView): Uint8Array | null {
    const req = this.decodeRequest(message);
    if (!req) return null;
    const key = commandKey(req.netFn, req.cmd);
    if (IPMI15_SESSION_COMMANDS.has(key)) {
      this.refuse('ipmi-1.5', { from: `${from.address}:${from.port}`, why: req.cmd === 0x39 ? 'get session challenge' : 'activate session' });
      return encodeIpmiResponse(req, CC.invalidCommand);
    }
    const spec = COMMANDS.get(key);
    if (!spec?.sessionless) {
      this.drop('sessionless-command');
      return null;
    }
    return this.run(spec, req, null, host, from).response;
  }

  // ---------------------------------------------------------------- session set-up

  private receiveSetup(from: IpmiEndpoint, pkt: SessionPacket & { format: 'rmcp+' }): void {
    // Set-up messages travel with session ID 0, sequence 0 and both flags clear (cat. §5.3).
    if (pkt.sessionId !== 0 || pkt.sequence !== 0 || pkt.authenticated || pkt.encrypted) {
      this.drop('malformed');
      return;
    }
    const ctx = this.handshakeContext();
    let reply: SetupReply | null;
    if (pkt.payloadType === PAYLOAD.openSessionRequest) reply = openSession(ctx, from, pkt.payload, this.now);
    else if (pkt.payloadType === PAYLOAD.rakp1) reply = rakp1(ctx, from, pkt.payload, this.now);
    else reply = rakp3(ctx, from, pkt.payload, this.now);
    if (reply) this.send(from, encodeRmcpPlus({ payloadType: reply.payloadType, sessionId: 0, sequence: 0, payload: reply.payload, encrypted: false }));
  }

  private handshakeContext(): HandshakeContext {
    return {
      table: this.table,
      users: this.bmc.users,
      guid: this.bmc.guid,
      suites: this.bmc.suites,
      counters: this.counters,
      random: this.random,
      refuse: (reason, _now, fields) => this.refuse(reason, fields),
      drop: (reason) => this.drop(reason),
      info: (msg, fields) => this.out.push({ kind: 'log', level: 'info', msg, fields }),
      evicted: (sessions: HalfOpenSession[]) => {
        if (sessions.length === 0) return;
        this.counters.sessions.halfOpenEvicted += sessions.length;
        this.limited('evicted', 'warn', 'IPMI half-open sessions evicted to make room (an Open Session flood?)', {
          halfOpen: this.table.halfOpenCount, evictedTotal: this.counters.sessions.halfOpenEvicted,
        });
      },
    };
  }

  // ---------------------------------------------------------------- in session

  private receiveInSession(from: IpmiEndpoint, datagram: Uint8Array, pkt: SessionPacket & { format: 'rmcp+' }, host: IpmiHostView): void {
    const s = this.table.getActive(pkt.sessionId);
    if (!s) return this.drop('unknown-session');
    const peer = `${from.address}:${from.port}`;
    if (s.peer.address !== from.address || s.peer.port !== from.port) return this.drop('wrong-source', { sessionId: hex32(s.sidC), from: peer });
    // Suites 3 and 17 have integrity and confidentiality: every packet of theirs is authenticated and encrypted (cat. §5.2).
    if (!pkt.authenticated || !pkt.encrypted) return this.drop('unauthenticated');
    const verdict = s.window.check(pkt.sequence);
    if (verdict !== 'ok') return this.drop(verdict, { sessionId: hex32(s.sidC), sequence: pkt.sequence, from: peer });
    if (!verifyIntegrity(datagram, pkt, s.suite, s.k1)) return this.drop('integrity', { sessionId: hex32(s.sidC), from: peer });
    let message: Uint8Array;
    try {
      message = s.aes.decrypt(pkt.payload);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      return this.drop('confidentiality');
    }
    s.window.mark(pkt.sequence);
    s.lastActivity = this.now;
    s.rakp3Code = null; // the console has its RAKP 4
    const req = this.decodeRequest(message);
    if (!req) return;
    const spec = COMMANDS.get(commandKey(req.netFn, req.cmd));
    const { response, afterReply } = spec
      ? this.run(spec, req, s, host, from)
      : { response: encodeIpmiResponse(req, CC.invalidCommand), afterReply: [] };
    this.counters.commands++;
    this.sendInSession(s, response);
    for (const f of afterReply) f();
  }

  /** Seals an IPMI response under the session: AES-CBC-128 with a fresh IV, then the integrity trailer. */
  private sendInSession(s: ActiveSession, message: Uint8Array): void {
    if (s.outSeq >= 0xffffffff) {
      // The outbound counter would wrap (§6.12.13): the session ends instead of reusing a number.
      this.closeSession(s.sidC, 'sequence number exhausted');
      return;
    }
    s.outSeq++;
    const payload = s.aes.encrypt(this.random(16), message);
    this.send(s.peer, encodeRmcpPlus({
      payloadType: PAYLOAD.ipmi, sessionId: s.sidM, sequence: s.outSeq, payload, encrypted: true, integrity: { suite: s.suite, k1: s.k1 },
    }));
  }

  private decodeRequest(message: Uint8Array): IpmiRequest | null {
    try {
      return decodeIpmiRequest(message);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.drop(e.code === 'E_CHECKSUM' ? 'checksum' : 'malformed');
      return null;
    }
  }

  private run(
    spec: CommandSpec, req: IpmiRequest, session: ActiveSession | null, host: IpmiHostView, from: IpmiEndpoint,
  ): { response: Uint8Array; afterReply: (() => void)[] } {
    if (session && session.privilege < spec.privilege) {
      this.refuse('privilege', {
        from: `${from.address}:${from.port}`, sessionId: hex32(session.sidC), user: session.user.user.name, command: spec.name,
        needs: privilegeName(spec.privilege), has: privilegeName(session.privilege),
      });
      return { response: encodeIpmiResponse(req, CC.insufficientPrivilege), afterReply: [] };
    }
    const ctx: CommandContext = {
      session, host, now: this.now, bmc: this.bmc, effects: [], afterReply: [],
      refuse: (reason, fields) => this.refuse(reason, { from: `${from.address}:${from.port}`, ...fields }),
      closeSession: (sid, by) => this.closeSession(sid, by),
    };
    const result = spec.run(req, ctx);
    for (const e of ctx.effects) {
      if (e.kind === 'host-command') this.counters.hostCommands++;
      this.out.push(e);
    }
    return { response: encodeIpmiResponse(req, result.cc, result.data), afterReply: ctx.afterReply };
  }
}
