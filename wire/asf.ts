/**
 * ASF messages carried in RMCP class 06h (DMTF DSP0136 ASF 2.0 §3.2.4): the subset a
 * management NIC answers on UDP 623 (ping, capabilities, system state) and the four
 * "Set" commands (reset, power-up, power-down, power cycle). Session messages
 * (83h/43h/84h/44h, RAKP C0h-C2h) belong to the RSP path and are refused here (E_TYPE).
 *
 * ASF message header (8 bytes, §3.2.2.3 p.22), all integers big-endian:
 *   IANA Enterprise Number (4, = 4542) | Message Type | Message Tag | Reserved (00h) | Data Length
 * then exactly Data Length bytes of data. Byte layouts: reference/asf-rmcp-catalogue.md §3.
 *
 * Decoding is strict about lengths (Wireshark is not, so our tests must be) and tolerant of
 * reserved bits and bytes, which are ignored on input and sent as zero.
 */
import { ProtocolError, UsageError } from '../common/errors.js';
import { putU16, putU32, u16, u32 } from '../common/bytes.js';
import {
  RMCP_CLASS_ASF,
  RMCP_HEADER_LENGTH,
  RMCP_VERSION_1_0,
  assertBytes,
  decodeRmcpHeader,
  writeRmcpHeader,
  type RmcpHeader,
} from './rmcp.js';

/** IANA Enterprise Number of the Alert Standard Forum, `00 00 11 BE` (p.22). */
export const ASF_IANA = 4542;
export const ASF_HEADER_LENGTH = 8;

// ---- System state codes (§3.2.4.5 p.39, catalogue §3.6) -----------------------------------
export type SystemStateCode = number;
export const S0_WORKING = 0x00; // S0/G0 working
export const S1 = 0x01; // sleeping, h/w & processor context maintained
export const S2 = 0x02; // sleeping, processor context lost
export const S3 = 0x03; // sleeping, memory retained (suspend to RAM)
export const S4 = 0x04; // non-volatile sleep / suspend to disk
export const S5_SOFT_OFF = 0x05; // S5/G2 soft-off
export const S4_S5_SOFT_OFF = 0x06; // S4 or S5, cannot tell which
export const G3_MECHANICAL_OFF = 0x07;
export const SLEEPING_S1_S3 = 0x08; // S1, S2 or S3 (cannot tell which), or legacy sleep
export const G1_SLEEPING = 0x09; // S1-S4, cannot tell which
export const S5_OVERRIDE = 0x0a; // e.g. 4-second power-button override
export const LEGACY_ON = 0x0b;
export const LEGACY_OFF = 0x0c;
/** What the ASD must report until host firmware has set a state (§5.3.2 p.75). */
export const UNKNOWN = 0x0e;

// ---- Special commands (Boot Options data byte 5, §3.2.4.1 p.34) ---------------------------
export const SPECIAL_NOP = 0x00;
export const SPECIAL_FORCE_PXE = 0x01;
export const SPECIAL_FORCE_HDD = 0x02;
export const SPECIAL_FORCE_HDD_SAFE_MODE = 0x03;
export const SPECIAL_FORCE_DIAGNOSTIC = 0x04;
export const SPECIAL_FORCE_CD_DVD = 0x05;

// ---- Capabilities Response data byte 11, System Capabilities (§3.2.4.4 pp.37-38) ----------
/** Bits 7:4 = allowed on either port; bits 3:0 = allowed only on the secure port. */
export const CAP_RESET_ANY_PORT = 0x80;
export const CAP_POWER_UP_ANY_PORT = 0x40;
export const CAP_POWER_DOWN_ANY_PORT = 0x20;
export const CAP_POWER_CYCLE_ANY_PORT = 0x10;
export const CAP_RESET_SECURE = 0x08;
export const CAP_POWER_UP_SECURE = 0x04;
export const CAP_POWER_DOWN_SECURE = 0x02;
export const CAP_POWER_CYCLE_SECURE = 0x01;

// ---- Presence Pong data bytes 9-10 (§3.2.4.3 p.36) ----------------------------------------
export const ENTITY_IPMI = 0x80;
export const ENTITY_ASF_1_0 = 0x01;
export const INTERACTION_RMCP_SECURITY = 0x80;

/** Data bytes of Reset / Power-Up / Power Cycle Reset (§3.2.4.1 pp.33-34). */
export interface BootOptions {
  iana: number;
  specialCommand: number;
  specialCommandParam: number;
  bootOptionsMask: number;
  oemParams: number;
}

export type AsfMessage =
  | { type: 'presence-ping'; tag: number }
  | {
      type: 'presence-pong';
      tag: number;
      iana: number;
      oem: number;
      supportedEntities: number;
      supportedInteractions: number;
    }
  | { type: 'capabilities-request'; tag: number }
  | {
      type: 'capabilities-response';
      tag: number;
      iana: number;
      oem: number;
      specialCommands: number;
      systemCapabilities: number;
      firmwareCapabilities: number;
    }
  | { type: 'system-state-request'; tag: number }
  | { type: 'system-state-response'; tag: number; systemState: SystemStateCode; watchdogExpired: boolean }
  | { type: 'reset' | 'power-up' | 'power-cycle'; tag: number; bootOptions: BootOptions | null }
  | { type: 'power-down'; tag: number };

export type AsfType = AsfMessage['type'];

/** Message Type codes (§3.2.2.3 p.22; Wireshark `asf_type_vals[]`). */
export const ASF_TYPE_CODE: Record<AsfType, number> = {
  'presence-ping': 0x80,
  'presence-pong': 0x40,
  'capabilities-request': 0x81,
  'capabilities-response': 0x41,
  'system-state-request': 0x82,
  'system-state-response': 0x42,
  reset: 0x10,
  'power-up': 0x11,
  'power-cycle': 0x13,
  'power-down': 0x12,
};

const TYPE_BY_CODE = new Map<number, AsfType>(
  (Object.entries(ASF_TYPE_CODE) as [AsfType, number][]).map(([t, c]) => [c, t]),
);

/** Message types ASF 2.0 defines that this codec does not carry (RSP session set-up). */
const SESSION_TYPE_NAMES = new Map<number, string>([
  [0x43, 'Open Session Response'],
  [0x44, 'Close Session Response'],
  [0x83, 'Open Session Request'],
  [0x84, 'Close Session Request'],
  [0xc0, 'RAKP Message 1'],
  [0xc1, 'RAKP Message 2'],
  [0xc2, 'RAKP Message 3'],
]);

const PONG_DATA_LENGTH = 16; // §3.2.4.3
const CAPABILITIES_DATA_LENGTH = 16; // §3.2.4.4
const STATE_DATA_LENGTH = 4; // catalogue §7: state, watchdog, 2 reserved
const STATE_DATA_MIN_LENGTH = 2; // what tshark's vectors and the Emulab client use
const BOOT_OPTIONS_LENGTH = 11; // §3.2.4.1 p.33: "0Bh or greater"

// ---- Encoding ------------------------------------------------------------------------------

function assertUint(name: string, v: unknown, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new UsageError('E_USAGE', `${name}: expected an integer 0..${max}, got ${String(v)}`);
  }
}

function checkBootOptions(o: BootOptions): void {
  assertUint('bootOptions.iana', o.iana, 0xffffffff);
  assertUint('bootOptions.specialCommand', o.specialCommand, 0xff);
  assertUint('bootOptions.specialCommandParam', o.specialCommandParam, 0xffff);
  assertUint('bootOptions.bootOptionsMask', o.bootOptionsMask, 0xffff);
  assertUint('bootOptions.oemParams', o.oemParams, 0xffff);
}

/** Checks the message's fields and returns its Data Length (header byte 7), before anything is written. */
function checkedDataLength(msg: AsfMessage): number {
  switch (msg.type) {
    case 'presence-ping':
    case 'capabilities-request':
    case 'system-state-request':
    case 'power-down':
      return 0;
    case 'presence-pong':
      assertUint('iana', msg.iana, 0xffffffff);
      assertUint('oem', msg.oem, 0xffffffff);
      assertUint('supportedEntities', msg.supportedEntities, 0xff);
      assertUint('supportedInteractions', msg.supportedInteractions, 0xff);
      return PONG_DATA_LENGTH;
    case 'capabilities-response':
      assertUint('iana', msg.iana, 0xffffffff);
      assertUint('oem', msg.oem, 0xffffffff);
      assertUint('specialCommands', msg.specialCommands, 0xffff);
      assertUint('systemCapabilities', msg.systemCapabilities, 0xff);
      assertUint('firmwareCapabilities', msg.firmwareCapabilities, 0xffffffff);
      return CAPABILITIES_DATA_LENGTH;
    case 'system-state-response':
      assertUint('systemState', msg.systemState, 0x0f);
      if (typeof msg.watchdogExpired !== 'boolean') {
        throw new UsageError('E_USAGE', 'watchdogExpired: expected a boolean');
      }
      return STATE_DATA_LENGTH;
    case 'reset':
    case 'power-up':
    case 'power-cycle':
      if (msg.bootOptions === null) return 0;
      if (typeof msg.bootOptions !== 'object') {
        throw new UsageError('E_USAGE', `${msg.type}: bootOptions must be an object or null`);
      }
      checkBootOptions(msg.bootOptions);
      return BOOT_OPTIONS_LENGTH;
  }
}

/** Writes the Data field of a checked message at `o` (the array is fresh: reserved bytes are already zero). */
function writeData(msg: AsfMessage, d: Uint8Array, o: number): void {
  switch (msg.type) {
    case 'presence-pong': // bytes 11-16 reserved, zero
      putU32(d, o, msg.iana);
      putU32(d, o + 4, msg.oem);
      d[o + 8] = msg.supportedEntities;
      d[o + 9] = msg.supportedInteractions;
      return;
    case 'capabilities-response': // byte 16 reserved, zero
      putU32(d, o, msg.iana);
      putU32(d, o + 4, msg.oem);
      putU16(d, o + 8, msg.specialCommands);
      d[o + 10] = msg.systemCapabilities;
      putU32(d, o + 11, msg.firmwareCapabilities);
      return;
    case 'system-state-response': // state, watchdog, 2 reserved
      d[o] = msg.systemState;
      d[o + 1] = msg.watchdogExpired ? 1 : 0;
      return;
    case 'reset':
    case 'power-up':
    case 'power-cycle': {
      const b = msg.bootOptions;
      if (b === null) return;
      putU32(d, o, b.iana);
      d[o + 4] = b.specialCommand;
      putU16(d, o + 5, b.specialCommandParam); // parameter byte 1 in data byte 6 (catalogue §3.7)
      putU16(d, o + 7, b.bootOptionsMask);
      putU16(d, o + 9, b.oemParams);
      return;
    }
    default:
      return; // no Data field
  }
}

/**
 * The ASF message (8-byte header plus data) in a new array, after `prefix` bytes left for the caller (the RMCP
 * header): one allocation per datagram on the NIC's answer path.
 */
function encodeAsfAfter(prefix: number, msg: AsfMessage): Uint8Array {
  const type: unknown = msg?.type;
  if (typeof type !== 'string' || !Object.hasOwn(ASF_TYPE_CODE, type)) {
    throw new UsageError('E_USAGE', `encodeAsf: unknown message type ${JSON.stringify(msg?.type)}`);
  }
  assertUint('tag', msg.tag, 0xff);
  const length = checkedDataLength(msg);
  const out = new Uint8Array(prefix + ASF_HEADER_LENGTH + length);
  putU32(out, prefix, ASF_IANA);
  out[prefix + 4] = ASF_TYPE_CODE[msg.type];
  out[prefix + 5] = msg.tag;
  out[prefix + 6] = 0x00;
  out[prefix + 7] = length;
  writeData(msg, out, prefix + ASF_HEADER_LENGTH);
  return out;
}

/** The 8-byte ASF header plus data (no RMCP header). */
export function encodeAsf(msg: AsfMessage): Uint8Array {
  return encodeAsfAfter(0, msg);
}

// ---- Decoding ------------------------------------------------------------------------------

const NO_DATA = new Uint8Array(0);

function lengthError(type: AsfType, got: number, want: string): ProtocolError {
  return new ProtocolError('E_LENGTH', `ASF ${type}: Data Length ${got} is invalid (expected ${want})`);
}

function decodeBootOptions(d: Uint8Array): BootOptions {
  return {
    iana: u32(d, 0),
    specialCommand: d[4],
    specialCommandParam: u16(d, 5),
    bootOptionsMask: u16(d, 7),
    oemParams: u16(d, 9),
  };
}

function decodeBody(type: AsfType, tag: number, d: Uint8Array): AsfMessage {
  const n = d.length;
  switch (type) {
    case 'presence-ping':
    case 'capabilities-request':
    case 'system-state-request':
      if (n !== 0) throw lengthError(type, n, '0');
      return { type, tag };
    case 'power-down':
      // 0 per §3.2.4.2; the Emulab client sends the 11-byte boot-options block: ignore it.
      if (n !== 0 && n !== BOOT_OPTIONS_LENGTH) throw lengthError(type, n, '0 or 11');
      return { type, tag };
    case 'presence-pong':
      if (n !== PONG_DATA_LENGTH) throw lengthError(type, n, '16');
      return {
        type,
        tag,
        iana: u32(d, 0),
        oem: u32(d, 4),
        supportedEntities: d[8],
        supportedInteractions: d[9],
      };
    case 'capabilities-response':
      if (n !== CAPABILITIES_DATA_LENGTH) throw lengthError(type, n, '16');
      return {
        type,
        tag,
        iana: u32(d, 0),
        oem: u32(d, 4),
        specialCommands: u16(d, 8),
        systemCapabilities: d[10],
        firmwareCapabilities: u32(d, 11),
      };
    case 'system-state-response':
      if (n !== STATE_DATA_MIN_LENGTH && n !== STATE_DATA_LENGTH) throw lengthError(type, n, '2 or 4');
      // Byte 1 bits 7:4 and byte 2 bits 7:1 are reserved (p.39).
      return { type, tag, systemState: d[0] & 0x0f, watchdogExpired: (d[1] & 0x01) !== 0 };
    case 'reset':
    case 'power-up':
    case 'power-cycle':
      // p.33: 00h = no options, 0Bh or greater = Boot Options; bytes past 11 are ignored.
      if (n !== 0 && n < BOOT_OPTIONS_LENGTH) throw lengthError(type, n, '0 or >= 11');
      return { type, tag, bootOptions: n === 0 ? null : decodeBootOptions(d) };
  }
}

/**
 * Decodes one ASF message starting at `offset` (the first byte after the RMCP header when
 * called on a datagram). The message must end exactly at the end of `b`.
 */
export function decodeAsf(b: Uint8Array, offset = 0): AsfMessage {
  assertBytes('decodeAsf', b);
  assertUint('decodeAsf offset', offset, Number.MAX_SAFE_INTEGER);
  const avail = b.length - offset;
  if (avail < ASF_HEADER_LENGTH) {
    throw new ProtocolError('E_SHORT', `ASF header needs 8 bytes, got ${Math.max(avail, 0)}: drop the datagram`);
  }
  const iana = u32(b, offset);
  if (iana !== ASF_IANA) {
    throw new ProtocolError('E_IANA', `ASF IANA Enterprise Number ${iana} is not 4542: OEM message sets are not supported`);
  }
  const code = b[offset + 4];
  const tag = b[offset + 5];
  const dataLength = b[offset + 7];
  const present = avail - ASF_HEADER_LENGTH;
  if (present !== dataLength) {
    throw new ProtocolError(
      'E_LENGTH',
      `ASF Data Length ${dataLength} but ${present} data bytes present (type 0x${hex2(code)}): drop the datagram`,
    );
  }
  const type = TYPE_BY_CODE.get(code);
  if (type === undefined) throw new ProtocolError('E_TYPE', `ASF message type ${describeCode(code)} is not supported`);
  // slice(): a copy of a Uint8Array, which is often small and on V8's heap (a view would first move it out);
  // a view of a Buffer (Buffer.prototype.slice).
  const data = dataLength === 0 ? NO_DATA : b.slice(offset + ASF_HEADER_LENGTH, offset + ASF_HEADER_LENGTH + dataLength);
  return decodeBody(type, tag, data);
}

// ---- RMCP + ASF datagrams ------------------------------------------------------------------

export interface RmcpAsfPacket {
  rmcp: RmcpHeader;
  /** null for an RMCP ACK, which has no data block (§3.2.2.1). */
  asf: AsfMessage | null;
}

/** A whole UDP payload: RMCP header (version 6, class ASF, this sequence) + ASF message. */
export function encodeRmcpAsf(sequence: number, msg: AsfMessage): Uint8Array {
  const out = encodeAsfAfter(RMCP_HEADER_LENGTH, msg);
  writeRmcpHeader(out, { version: RMCP_VERSION_1_0, sequence, messageClass: RMCP_CLASS_ASF, ack: false });
  return out;
}

/**
 * Decodes a UDP/623 payload. An RMCP ACK (of any class) is exactly the 4-byte header and
 * comes back with `asf: null`; a normal message must be class ASF.
 */
export function decodeRmcpAsf(b: Uint8Array): RmcpAsfPacket {
  const rmcp = decodeRmcpHeader(b);
  if (rmcp.ack) {
    if (b.length !== RMCP_HEADER_LENGTH) {
      throw new ProtocolError('E_LENGTH', `RMCP ACK must be 4 bytes, got ${b.length}: drop the datagram`);
    }
    return { rmcp, asf: null };
  }
  if (rmcp.messageClass !== RMCP_CLASS_ASF) {
    throw new ProtocolError('E_CLASS', `RMCP class 0x${hex2(rmcp.messageClass)} is not ASF (06h): not handled here`);
  }
  return { rmcp, asf: decodeAsf(b, RMCP_HEADER_LENGTH) };
}

/**
 * The Presence Pong this NIC sends (§3.2.4.3 p.36, catalogue §3.4): IANA 4542, OEM 0,
 * entities = ASF 1.0 (+ IPMI bit), interactions = RMCP security extensions bit if the secure
 * port is served. Encoded with RMCP it is the 28-byte datagram FreeIPMI rmcpping requires.
 */
export function presencePong(tag: number, opts: { ipmi: boolean; secure: boolean }): AsfMessage {
  assertUint('tag', tag, 0xff);
  return {
    type: 'presence-pong',
    tag,
    iana: ASF_IANA,
    oem: 0,
    supportedEntities: ENTITY_ASF_1_0 | (opts.ipmi ? ENTITY_IPMI : 0),
    supportedInteractions: opts.secure ? INTERACTION_RMCP_SECURITY : 0,
  };
}

/** Message type name as Wireshark prints it, for logs ("Presence Ping", "Unknown (0x99)"). */
export function asfTypeName(code: number): string {
  return WIRESHARK_NAMES.get(code) ?? SESSION_TYPE_NAMES.get(code) ?? `Unknown (0x${hex2(code)})`;
}

const WIRESHARK_NAMES = new Map<number, string>([
  [0x10, 'Reset'],
  [0x11, 'Power-up'],
  [0x12, 'Unconditional Power-down'],
  [0x13, 'Power Cycle'],
  [0x40, 'Presence Pong'],
  [0x41, 'Capabilities Response'],
  [0x42, 'System State Response'],
  [0x80, 'Presence Ping'],
  [0x81, 'Capabilities Request'],
  [0x82, 'System State Request'],
]);

function describeCode(code: number): string {
  const session = SESSION_TYPE_NAMES.get(code);
  return session ? `0x${hex2(code)} (${session}, RSP session set-up)` : `0x${hex2(code)} (unknown)`;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
