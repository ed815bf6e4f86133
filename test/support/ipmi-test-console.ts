/**
 * A remote console (client) for RMCP+ written from the IPMI v2.0 spec and the catalogue, for pure tests of
 * firmware/ipmi/. It shares no code with the BMC side on purpose (framing, HMACs, keys, AES, checksums are
 * all written again here with node:crypto), so a mistake in one is not hidden by the same mistake in the other.
 *
 * Flow (cat. §3, §4):  openSession() --> onOpenSession() ; rakp1() --> onRakp2() ; rakp3() --> onRakp4() ;
 * then request() / onResponse() in the session.
 */
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';

export interface ConsoleOptions {
  suite: 3 | 17;
  user: string;
  password: string;
  /** RAKP 1 byte 24 (default 14h: name-only lookup, ADMINISTRATOR). */
  role?: number;
  /** Open Session byte 1 (default 0: "highest matching"). */
  openPrivilege?: number;
  random: (n: number) => Uint8Array;
  sidM?: number;
  /** Algorithms to propose instead of the suite's (for refusal tests). */
  algorithms?: [number, number, number];
}

const SUITE = {
  3: { algs: [0x01, 0x01, 0x01], hash: 'sha1', authLen: 12 },
  17: { algs: [0x03, 0x04, 0x01], hash: 'sha256', authLen: 16 },
} as const;

const le32 = (v: number) => Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
const rd32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
const cat = (...p: Uint8Array[]) => new Uint8Array(Buffer.concat(p));
const ck = (b: Uint8Array) => (0x100 - (b.reduce((s, x) => s + x, 0) & 0xff)) & 0xff;

export interface Frame {
  authType: number;
  payloadType: number;
  encrypted: boolean;
  authenticated: boolean;
  sessionId: number;
  sequence: number;
  payload: Uint8Array;
  raw: Uint8Array;
}

/** Reads the RMCP + RMCP+ header of a BMC datagram (IPMI v2.0 table 13-8). Null for IPMI 1.5 framing. */
export function readFrame(d: Uint8Array): Frame | null {
  if (d[0] !== 0x06 || d[3] !== 0x07 || d[4] !== 0x06) return null;
  const len = d[14] | (d[15] << 8);
  return {
    authType: d[4], payloadType: d[5] & 0x3f, encrypted: (d[5] & 0x80) !== 0, authenticated: (d[5] & 0x40) !== 0,
    sessionId: rd32(d, 6), sequence: rd32(d, 10), payload: d.slice(16, 16 + len), raw: d,
  };
}

/** An RMCP+ datagram with no trailer (set-up messages and pre-session IPMI messages). */
export function plainFrame(payloadType: number, payload: Uint8Array, sessionId = 0, sequence = 0, flags = 0): Uint8Array {
  const len = Uint8Array.of(payload.length & 0xff, payload.length >> 8);
  return cat(Uint8Array.of(0x06, 0x00, 0xff, 0x07, 0x06, flags | payloadType), le32(sessionId), le32(sequence), len, payload);
}

/** An IPMI request message (IPMI v2.0 table 13-8): rsAddr 20h, rqAddr 81h. */
export function ipmiRequest(netFn: number, cmd: number, data: Uint8Array | number[], rqSeq = 1): Uint8Array {
  const h = Uint8Array.of(0x20, netFn << 2);
  const body = cat(Uint8Array.of(0x81, rqSeq << 2, cmd), Uint8Array.from(data));
  return cat(h, Uint8Array.of(ck(h)), body, Uint8Array.of(ck(body)));
}

/** IPMI 1.5 sessionless framing (AuthType 00h, seq 0, session ID 0). */
export function ipmi15Frame(message: Uint8Array, authType = 0, sessionId = 0, sequence = 0): Uint8Array {
  const code = authType === 0 ? new Uint8Array(0) : new Uint8Array(16);
  return cat(Uint8Array.of(0x06, 0x00, 0xff, 0x07, authType), le32(sequence), le32(sessionId), code, Uint8Array.of(message.length), message);
}

export interface Response { netFn: number; cmd: number; rqSeq: number; cc: number; data: Uint8Array }

/** Reads an IPMI response message, checking both checksums; null if they fail. */
export function readResponse(m: Uint8Array): Response | null {
  if (m.length < 8 || ck(m.subarray(0, 2)) !== m[2] || ck(m.subarray(3, m.length - 1)) !== m[m.length - 1]) return null;
  return { netFn: m[1] >> 2, rqSeq: m[4] >> 2, cmd: m[5], cc: m[6], data: m.slice(7, m.length - 1) };
}

export interface SealOptions { seq?: number; iv?: Uint8Array; tamper?: (d: Uint8Array) => void }

export class IpmiTestConsole {
  readonly sidM: number;
  sidC = 0;
  rM: Uint8Array = new Uint8Array(16);
  rC: Uint8Array = new Uint8Array(16);
  guid: Uint8Array = new Uint8Array(16);
  sik: Uint8Array = new Uint8Array(0);
  k1: Uint8Array = new Uint8Array(0);
  k2: Uint8Array = new Uint8Array(0);
  /** Next outbound session sequence number (FreeIPMI-like: starts at 1). */
  seq = 1;
  private rqSeq = 1;
  private readonly s: (typeof SUITE)[3 | 17];
  private readonly name: Uint8Array;
  private readonly key: Uint8Array;
  readonly role: number;

  constructor(private readonly o: ConsoleOptions) {
    this.s = SUITE[o.suite];
    this.sidM = o.sidM ?? (rd32(o.random(4), 0) | 1) >>> 0;
    this.name = new TextEncoder().encode(o.user);
    this.key = new TextEncoder().encode(o.password);
    this.role = o.role ?? 0x14;
  }

  private hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
    const h = createHmac(this.s.hash, key);
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  }

  /** Get Channel Authentication Capabilities, IPMI 1.5 framing, "8E 04" as both clients send it (cat. §2.1). */
  gcac(): Uint8Array {
    return ipmi15Frame(ipmiRequest(0x06, 0x38, [0x8e, 0x04], 0));
  }

  openSession(tag = 0): Uint8Array {
    const [a, i, c] = this.o.algorithms ?? this.s.algs;
    const p = cat(
      Uint8Array.of(tag, this.o.openPrivilege ?? 0, 0, 0), le32(this.sidM),
      Uint8Array.of(0x00, 0, 0, 8, a, 0, 0, 0), Uint8Array.of(0x01, 0, 0, 8, i, 0, 0, 0), Uint8Array.of(0x02, 0, 0, 8, c, 0, 0, 0),
    );
    return plainFrame(0x10, p);
  }

  onOpenSession(d: Uint8Array): { status: number; maxPrivilege: number; sidC: number } {
    const f = readFrame(d)!;
    if (f.payloadType !== 0x11) throw new Error(`expected an Open Session Response, got payload type ${f.payloadType}`);
    const p = f.payload;
    if (rd32(p, 4) !== this.sidM) throw new Error('Open Session Response does not echo SID_M');
    if (p[1] === 0) this.sidC = rd32(p, 8);
    return { status: p[1], maxPrivilege: p[2], sidC: this.sidC };
  }

  rakp1(tag = 0): Uint8Array {
    this.rM = this.o.random(16);
    return plainFrame(0x12, cat(Uint8Array.of(tag, 0, 0, 0), le32(this.sidC), this.rM, Uint8Array.of(this.role, 0, 0, this.name.length), this.name));
  }

  /** RAKP 2: status, and whether its HMAC matches K_UID (false = this console's password is wrong). */
  onRakp2(d: Uint8Array): { status: number; hmacOk: boolean; payload: Uint8Array } {
    const f = readFrame(d)!;
    if (f.payloadType !== 0x13) throw new Error(`expected RAKP 2, got payload type ${f.payloadType}`);
    const p = f.payload;
    if (p[1] !== 0) return { status: p[1], hmacOk: false, payload: p };
    this.rC = p.slice(8, 24);
    this.guid = p.slice(24, 40);
    const expect = this.hmac(this.key, le32(this.sidM), le32(this.sidC), this.rM, this.rC, this.guid, Uint8Array.of(this.role, this.name.length), this.name);
    return { status: 0, hmacOk: Buffer.compare(expect, p.subarray(40)) === 0, payload: p };
  }

  /** RAKP 3 with the code under this console's password; derives SIK, K1, K2. */
  rakp3(tag = 0, status = 0): Uint8Array {
    const code = this.hmac(this.key, this.rC, le32(this.sidM), Uint8Array.of(this.role, this.name.length), this.name);
    this.sik = this.hmac(this.key, this.rM, this.rC, Uint8Array.of(this.role, this.name.length), this.name);
    this.k1 = this.hmac(this.sik, new Uint8Array(20).fill(1));
    this.k2 = this.hmac(this.sik, new Uint8Array(20).fill(2));
    return plainFrame(0x14, cat(Uint8Array.of(tag, status, 0, 0), le32(this.sidC), code));
  }

  onRakp4(d: Uint8Array): { status: number; icvOk: boolean } {
    const f = readFrame(d)!;
    if (f.payloadType !== 0x15) throw new Error(`expected RAKP 4, got payload type ${f.payloadType}`);
    const p = f.payload;
    if (p[1] !== 0) return { status: p[1], icvOk: false };
    const icv = this.hmac(this.sik, this.rM, le32(this.sidC), this.guid).subarray(0, this.s.authLen);
    return { status: 0, icvOk: Buffer.compare(icv, p.subarray(8)) === 0 };
  }

  /** An in-session request: AES-CBC-128 with an IPMI pad, integrity pad, trailer, AuthCode (cat. §5). */
  request(netFn: number, cmd: number, data: number[] | Uint8Array = [], o: SealOptions = {}): Uint8Array {
    const msg = ipmiRequest(netFn, cmd, data, this.rqSeq);
    this.rqSeq = (this.rqSeq % 63) + 1;
    return this.seal(msg, o);
  }

  /** Seals any IPMI message (even a broken one) as an in-session packet. */
  seal(msg: Uint8Array, o: SealOptions = {}): Uint8Array {
    const n = (16 - ((msg.length + 1) % 16)) % 16;
    const padded = cat(msg, Uint8Array.from({ length: n }, (_, i) => i + 1), Uint8Array.of(n));
    const iv = o.iv ?? this.o.random(16);
    const c = createCipheriv('aes-128-cbc', this.k2.subarray(0, 16), iv).setAutoPadding(false);
    const payload = cat(iv, c.update(padded), c.final());
    const seq = o.seq ?? this.seq++;
    const head = plainFrame(0x00, payload, this.sidC, seq, 0xc0);
    const padLen = (4 - ((head.length - 4 + 2) % 4)) % 4;
    const covered = cat(head, new Uint8Array(padLen).fill(0xff), Uint8Array.of(padLen, 0x07));
    const out = cat(covered, this.hmac(this.k1, covered.subarray(4)).subarray(0, this.s.authLen));
    o.tamper?.(out);
    return out;
  }

  /** Verifies and decrypts an in-session answer; throws when anything does not check out. */
  onResponse(d: Uint8Array): Response & { sequence: number } {
    const f = readFrame(d)!;
    if (!f || f.sessionId !== this.sidM || !f.encrypted || !f.authenticated) throw new Error('not an encrypted, authenticated packet of this session');
    const end = 16 + f.payload.length;
    const padLen = d[end + (d.length - end - this.s.authLen - 2)];
    const coveredEnd = end + padLen + 2;
    if (d[coveredEnd - 1] !== 0x07 || (coveredEnd - 4) % 4 !== 0 || coveredEnd + this.s.authLen !== d.length) throw new Error('bad integrity trailer');
    for (let i = end; i < end + padLen; i++) if (d[i] !== 0xff) throw new Error('bad integrity pad');
    const code = this.hmac(this.k1, d.subarray(4, coveredEnd)).subarray(0, this.s.authLen);
    if (Buffer.compare(code, d.subarray(coveredEnd)) !== 0) throw new Error('AuthCode does not verify');
    const dec = createDecipheriv('aes-128-cbc', this.k2.subarray(0, 16), f.payload.subarray(0, 16)).setAutoPadding(false);
    const plain = cat(dec.update(f.payload.subarray(16)), dec.final());
    const n = plain[plain.length - 1];
    for (let i = 1; i <= n; i++) if (plain[plain.length - 1 - n + i - 1] !== i) throw new Error('bad confidentiality pad');
    const r = readResponse(plain.subarray(0, plain.length - 1 - n));
    if (!r) throw new Error('bad IPMI checksums');
    return { ...r, sequence: f.sequence };
  }
}
