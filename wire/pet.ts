/**
 * ASF alerts (DSP0136 §3.1): the Platform Event Trap (PET) a NIC sends its station, as an SNMPv1 Trap-PDU
 * (RFC 1157 §4.1.6) whose one variable binding carries the PET data. Byte layouts, event codes and the worked
 * example: ../shared/reference/asf-alerts-pet-catalogue.md §2-§3. Multi-byte PET fields are big-endian.
 *
 * Lifeline carries the unchanged trap inside ESP on UDP 664 as inner UDP (src 664, dst 162) + SNMP message, so a
 * decrypted packet dissects in Wireshark as UDP -> SNMP trap (catalogue §6); in the clear (only where the EEPROM
 * enables clear management) it is the plain trap to UDP 162. docs/ALERTS.md has the choice and the rest.
 *
 * The encoder writes what ipmi-pet and snmptrapd accept (catalogue §7): community, enterprise
 * 1.3.6.1.4.1.3183.1.1, generic-trap 6, one varbind named 1.3.6.1.4.1.3183.1.1.1. The decoder is strict about
 * the BER structure and the PET length (47..110 bytes, ending with the C1h end-of-fields marker) and reads only
 * what Lifeline sends: bad input is a ProtocolError, to be dropped and counted.
 */
import { ProtocolError, UsageError } from '../common/errors.js';
import { putU16, putU32, u16, u32 } from '../common/bytes.js';

/** SNMP trap port (RFC 1157 §4): the inner UDP destination of an alert. */
export const SNMP_TRAP_PORT = 162;
export const PET_MIN_LENGTH = 47;
export const PET_MAX_LENGTH = 110;
/** PET epoch: 1998-01-01 00:00 UTC, in Unix seconds (catalogue §2.3, OpenIPMI IPMI_SNMP_DATE_OFFSET). */
export const PET_EPOCH_UNIX_S = 883612800;
/** Event Type 6Fh: sensor-specific offsets (catalogue §3). */
export const EVENT_TYPE_SENSOR_SPECIFIC = 0x6f;
export const TRAP_SOURCE_NIC = 0x50;
export const EVENT_SOURCE_ASF = 0x68;
export const LANGUAGE_ENGLISH = 0x19;
const END_OF_FIELDS = 0xc1;

/** enterprise 1.3.6.1.4.1.3183.1.1 (wiredformgmt.pet.petEvts) and the varbind name .1 below it. */
const ENTERPRISE_OID = Uint8Array.of(0x2b, 0x06, 0x01, 0x04, 0x01, 0x98, 0x6f, 0x01, 0x01);
const VARBIND_OID = Uint8Array.of(...ENTERPRISE_OID, 0x01);

export interface Pet {
  /** System GUID, 16 bytes as FreeIPMI prints them (in order). */
  guid: Uint8Array;
  /** Sequence # / cookie: the same in every transmission of one event. */
  sequence: number;
  /** Local timestamp, seconds since 1998-01-01 00:00 (0: unspecified). */
  timestamp: number;
  /** UTC offset in minutes (0xFFFF unspecified); Lifeline sends UTC and 0. */
  utcOffset: number;
  trapSource: number;
  eventSource: number;
  severity: number;
  sensorDevice: number;
  sensorNumber: number;
  entity: number;
  entityInstance: number;
  /** Event Data 1-8. */
  eventData: Uint8Array;
  language: number;
  manufacturerId: number;
  systemId: number;
  /** OEM custom fields as IPMI FRU type/length records (without the C1h end marker). */
  oemFields: Uint8Array[];
}

function byte(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new UsageError('E_USAGE', `${name} must be 0..255, got ${v}`);
}

/** The PET data (the varbind value): 46 fixed bytes, the OEM fields, then C1h. */
export function encodePet(p: Pet): Uint8Array {
  if (!(p.guid instanceof Uint8Array) || p.guid.length !== 16) throw new UsageError('E_USAGE', 'PET GUID must be 16 bytes');
  if (!(p.eventData instanceof Uint8Array) || p.eventData.length !== 8) throw new UsageError('E_USAGE', 'PET event data must be 8 bytes');
  byte('trapSource', p.trapSource);
  byte('eventSource', p.eventSource);
  byte('severity', p.severity);
  byte('sensorDevice', p.sensorDevice);
  byte('sensorNumber', p.sensorNumber);
  byte('entity', p.entity);
  byte('entityInstance', p.entityInstance);
  byte('language', p.language);
  let oemLength = 0;
  for (const f of p.oemFields) {
    if (f.length < 1 || (f[0] & 0x3f) !== f.length - 1) throw new UsageError('E_USAGE', 'a PET OEM field is a FRU type/length byte and that many bytes');
    oemLength += f.length;
  }
  const out = new Uint8Array(46 + oemLength + 1);
  if (out.length > PET_MAX_LENGTH) throw new UsageError('E_USAGE', `PET of ${out.length} bytes exceeds ${PET_MAX_LENGTH}`);
  out.set(p.guid, 0);
  putU16(out, 16, p.sequence & 0xffff);
  putU32(out, 18, p.timestamp >>> 0);
  putU16(out, 22, p.utcOffset & 0xffff);
  out.set([p.trapSource, p.eventSource, p.severity, p.sensorDevice, p.sensorNumber, p.entity, p.entityInstance], 24);
  out.set(p.eventData, 31);
  out[39] = p.language;
  putU32(out, 40, p.manufacturerId >>> 0);
  putU16(out, 44, p.systemId & 0xffff);
  let at = 46;
  for (const f of p.oemFields) {
    out.set(f, at);
    at += f.length;
  }
  out[at] = END_OF_FIELDS;
  return out;
}

export function decodePet(b: Uint8Array): Pet {
  if (b.length < PET_MIN_LENGTH || b.length > PET_MAX_LENGTH) throw new ProtocolError('E_LENGTH', `PET of ${b.length} bytes; ${PET_MIN_LENGTH}..${PET_MAX_LENGTH} expected; dropped`);
  const oemFields: Uint8Array[] = [];
  let at = 46;
  for (;;) {
    if (at >= b.length) throw new ProtocolError('E_LENGTH', 'PET OEM fields do not end with C1h; dropped');
    const tl = b[at];
    if (tl === END_OF_FIELDS) break;
    const n = 1 + (tl & 0x3f);
    if (at + n > b.length) throw new ProtocolError('E_LENGTH', 'PET OEM field runs past the PET; dropped');
    oemFields.push(b.slice(at, at + n));
    at += n;
  }
  if (at !== b.length - 1) throw new ProtocolError('E_LENGTH', 'bytes after the PET end marker C1h; dropped');
  return {
    guid: b.slice(0, 16), sequence: u16(b, 16), timestamp: u32(b, 18), utcOffset: u16(b, 22),
    trapSource: b[24], eventSource: b[25], severity: b[26], sensorDevice: b[27], sensorNumber: b[28], entity: b[29], entityInstance: b[30],
    eventData: b.slice(31, 39), language: b[39], manufacturerId: u32(b, 40), systemId: u16(b, 44), oemFields,
  };
}

/** specific-trap = sensor type << 16 | event type << 8 | de-assertion bit 7 | offset (catalogue §2.2). */
export function specificTrap(sensorType: number, eventType: number, offset: number, deassert = false): number {
  return ((sensorType & 0xff) << 16) | ((eventType & 0xff) << 8) | (deassert ? 0x80 : 0) | (offset & 0x0f);
}

// ---------------------------------------------------------------- SNMPv1 Trap-PDU (BER, RFC 1157 §4.1.6)

export interface Trap {
  community: string;
  /** agent-addr: the managed client's IPv4 address, dotted. */
  agentAddr: string;
  specific: number;
  /** time-stamp: centiseconds since the sender (re)initialised (TimeTicks, u32). */
  timeTicks: number;
  /** The PET data (the one varbind's OCTET STRING). */
  pet: Uint8Array;
}

// The encoder sizes the whole message first and writes it into one buffer: an alert is encoded at every host event.

/** Bytes of a BER definite length for `n` content bytes (short form, or 81h/82h and one or two bytes). */
function lengthBytes(n: number): number {
  return n < 0x80 ? 1 : n < 0x100 ? 2 : 3;
}

/** Bytes of a TLV with `n` content bytes. */
function tlvSize(n: number): number {
  return 1 + lengthBytes(n) + n;
}

/** Write a TLV's tag and length at `at`; returns where its content starts. */
function putHeader(out: Uint8Array, at: number, tag: number, n: number): number {
  out[at++] = tag;
  if (n < 0x80) out[at++] = n;
  else if (n < 0x100) {
    out[at++] = 0x81;
    out[at++] = n;
  } else {
    out[at++] = 0x82;
    out[at++] = n >> 8;
    out[at++] = n & 0xff;
  }
  return at;
}

/** Bytes of the minimal two's-complement content of a non-negative 32-bit integer (a leading 00 when the top bit is set). */
function uintSize(v: number): number {
  let n = 1;
  for (let x = v >>> 0; x > 0xff; x = Math.floor(x / 256)) n++;
  return ((v >>> 0) / 2 ** (8 * n - 1)) >= 1 ? n + 1 : n;
}

/** Write an INTEGER TLV of `v` (its content uintSize(v) bytes, big-endian); returns the end. */
function putUint(out: Uint8Array, at: number, tag: number, v: number): number {
  const n = uintSize(v);
  at = putHeader(out, at, tag, n);
  let x = v >>> 0;
  for (let i = n - 1; i >= 0; i--) {
    out[at + i] = x & 0xff;
    x = Math.floor(x / 256);
  }
  return at + n;
}

function putBytes(out: Uint8Array, at: number, tag: number, body: Uint8Array): number {
  at = putHeader(out, at, tag, body.length);
  out.set(body, at);
  return at + body.length;
}

/** agent-addr's four bytes by its text: a NIC encodes its own address every time (bounded: an emulator has many NICs). */
const addrBytes = new Map<string, Uint8Array>();
const ADDR_CACHE_MAX = 4096;

function ipv4(a: string): Uint8Array {
  const had = addrBytes.get(a);
  if (had !== undefined) return had;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
  const parts = m ? m.slice(1).map(Number) : [];
  if (!m || parts.some((x) => x > 255)) throw new UsageError('E_USAGE', `agent-addr must be a dotted IPv4 address, got ${JSON.stringify(a)}`);
  const bytes = Uint8Array.from(parts);
  if (addrBytes.size >= ADDR_CACHE_MAX) addrBytes.clear();
  addrBytes.set(a, bytes);
  return bytes;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function encodeTrap(t: Trap): Uint8Array {
  if (!Number.isInteger(t.specific) || t.specific < 0 || t.specific > 0x7fffffff) throw new UsageError('E_USAGE', `specific-trap must be 0..2^31-1, got ${t.specific}`);
  const addr = ipv4(t.agentAddr);
  const community = utf8.encode(t.community);
  const timeTicks = t.timeTicks >>> 0;
  // Sizes inside out: the varbind (name, value), its list, the Trap-PDU, the message.
  const varbind = tlvSize(VARBIND_OID.length) + tlvSize(t.pet.length);
  const list = tlvSize(varbind);
  const pdu = tlvSize(ENTERPRISE_OID.length) + tlvSize(addr.length) + tlvSize(uintSize(6)) + tlvSize(uintSize(t.specific)) + tlvSize(uintSize(timeTicks)) + tlvSize(list);
  const message = tlvSize(uintSize(0)) + tlvSize(community.length) + tlvSize(pdu);
  const out = new Uint8Array(tlvSize(message));
  let at = putHeader(out, 0, 0x30, message);
  at = putUint(out, at, 0x02, 0);
  at = putBytes(out, at, 0x04, community);
  at = putHeader(out, at, 0xa4, pdu);
  at = putBytes(out, at, 0x06, ENTERPRISE_OID);
  at = putBytes(out, at, 0x40, addr);
  at = putUint(out, at, 0x02, 6);
  at = putUint(out, at, 0x02, t.specific);
  at = putUint(out, at, 0x43, timeTicks);
  at = putHeader(out, at, 0x30, list);
  at = putHeader(out, at, 0x30, varbind);
  at = putBytes(out, at, 0x06, VARBIND_OID);
  putBytes(out, at, 0x04, t.pet);
  return out;
}

/** A BER reader over one buffer: each read checks the tag and that the length fits. */
class Ber {
  constructor(private readonly b: Uint8Array, private at: number, private readonly end: number) {}

  read(tag: number, what: string): Ber {
    const { b } = this;
    if (this.at + 2 > this.end) throw new ProtocolError('E_SHORT', `SNMP trap ends before its ${what}; dropped`);
    if (b[this.at] !== tag) throw new ProtocolError('E_TYPE', `SNMP trap: ${what} has tag 0x${b[this.at].toString(16)}, 0x${tag.toString(16)} expected; dropped`);
    let n = b[this.at + 1];
    let at = this.at + 2;
    if (n & 0x80) {
      const k = n & 0x7f;
      if (k < 1 || k > 2 || at + k > this.end) throw new ProtocolError('E_LENGTH', `SNMP trap: bad length of its ${what}; dropped`);
      n = k === 1 ? b[at] : (b[at] << 8) | b[at + 1];
      at += k;
    }
    if (at + n > this.end) throw new ProtocolError('E_LENGTH', `SNMP trap: its ${what} runs past its container; dropped`);
    this.at = at + n;
    return new Ber(b, at, at + n);
  }

  bytes(): Uint8Array {
    return this.b.slice(this.at, this.end);
  }

  /** The content without a copy (read at once, not kept). */
  view(): Uint8Array {
    return this.b.subarray(this.at, this.end);
  }

  uint(what: string): number {
    const c = this.view();
    if (c.length < 1 || c.length > 5 || (c[0] & 0x80) !== 0 || (c.length === 5 && c[0] !== 0)) throw new ProtocolError('E_LENGTH', `SNMP trap: ${what} is not a 32-bit unsigned integer; dropped`);
    let v = 0;
    for (const x of c) v = v * 256 + x;
    return v;
  }

  done(what: string): void {
    if (this.at !== this.end) throw new ProtocolError('E_LENGTH', `SNMP trap: bytes after its ${what}; dropped`);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function decodeTrap(b: Uint8Array): Trap {
  const top = new Ber(b, 0, b.length);
  const msg = top.read(0x30, 'message');
  top.done('message');
  if (msg.read(0x02, 'version').uint('version') !== 0) throw new ProtocolError('E_VERSION', 'SNMP message is not version 1 (0); dropped');
  const community = utf8Decoder.decode(msg.read(0x04, 'community').view());
  const pdu = msg.read(0xa4, 'Trap-PDU');
  msg.done('Trap-PDU');
  if (!sameBytes(pdu.read(0x06, 'enterprise').view(), ENTERPRISE_OID)) throw new ProtocolError('E_TYPE', 'SNMP trap enterprise is not 1.3.6.1.4.1.3183.1.1 (PET); dropped');
  const addr = pdu.read(0x40, 'agent-addr').view();
  if (addr.length !== 4) throw new ProtocolError('E_LENGTH', 'SNMP trap agent-addr is not 4 bytes; dropped');
  if (pdu.read(0x02, 'generic-trap').uint('generic-trap') !== 6) throw new ProtocolError('E_TYPE', 'SNMP trap is not enterprise-specific (generic-trap 6); dropped');
  const specific = pdu.read(0x02, 'specific-trap').uint('specific-trap');
  const timeTicks = pdu.read(0x43, 'time-stamp').uint('time-stamp');
  const list = pdu.read(0x30, 'variable-bindings');
  pdu.done('variable-bindings');
  const vb = list.read(0x30, 'variable binding');
  list.done('variable binding (a PET has exactly one)');
  if (!sameBytes(vb.read(0x06, 'varbind name').view(), VARBIND_OID)) throw new ProtocolError('E_TYPE', 'SNMP trap varbind is not 1.3.6.1.4.1.3183.1.1.1 (PET data); dropped');
  const pet = vb.read(0x04, 'PET data').bytes();
  vb.done('PET data');
  return { community, agentAddr: `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`, specific, timeTicks, pet };
}

// ---------------------------------------------------------------- the events a Lifeline NIC reports

export type AlertEvent =
  | 'os-hang' | 'os-boot' | 'boot-initiated' | 'warm-reset' | 'power-up' | 'power-down' | 'sleep' | 'wake'
  | 'power-loss' | 'power-restore' | 'cable-pull' | 'cable-plug' | 'security';

export interface AlertCode {
  sensorType: number;
  offset: number;
  deassert: boolean;
  entity: number;
  severity: number;
  /** Event Data 1-3 (ED1 carries the offset in bits 3:0: what Linux decoders print, catalogue §3.2). */
  ed: [number, number, number];
  /** What ipmi-pet prints for it (catalogue §3), for people reading docs/ALERTS.md and `mgmt-station events`. */
  text: string;
}

export const SEVERITY = { monitor: 0x01, information: 0x02, ok: 0x04, nonCritical: 0x08, critical: 0x10 } as const;

/**
 * Event codes (catalogue §3): ASF's where DSP0136 prescribes them (OS hang, boot progress), IPMI sensor types
 * where ASF leaves them to the PET spec. Entities: 17h system chassis, 22h BIOS, 23h OS, 26h OOB management device.
 */
export const ALERT_CODES: Readonly<Record<AlertEvent, AlertCode>> = {
  'os-hang': { sensorType: 0x20, offset: 0x01, deassert: false, entity: 0x23, severity: SEVERITY.critical, ed: [0x01, 0xff, 0xff], text: 'OS Critical Stop: Run-time Critical Stop' },
  'os-boot': { sensorType: 0x0f, offset: 0x02, deassert: false, entity: 0x22, severity: SEVERITY.information, ed: [0xc2, 0x13, 0xff], text: 'System Firmware Progress: starting OS boot' },
  'boot-initiated': { sensorType: 0x1d, offset: 0x01, deassert: false, entity: 0x17, severity: SEVERITY.information, ed: [0x01, 0xff, 0xff], text: 'System Boot Initiated: hard reset' },
  'warm-reset': { sensorType: 0x1d, offset: 0x02, deassert: false, entity: 0x17, severity: SEVERITY.information, ed: [0x02, 0xff, 0xff], text: 'System Boot Initiated: warm reset' },
  'power-up': { sensorType: 0x1d, offset: 0x00, deassert: false, entity: 0x17, severity: SEVERITY.information, ed: [0x00, 0xff, 0xff], text: 'System Boot Initiated: initiated by power up' },
  'power-down': { sensorType: 0x09, offset: 0x00, deassert: false, entity: 0x17, severity: SEVERITY.information, ed: [0x00, 0xff, 0xff], text: 'Power Unit: Power Off/Power Down' },
  'sleep': { sensorType: 0x22, offset: 0x03, deassert: false, entity: 0x17, severity: SEVERITY.information, ed: [0x03, 0xff, 0xff], text: 'System ACPI Power State: S3 sleeping' },
  'wake': { sensorType: 0x22, offset: 0x00, deassert: false, entity: 0x17, severity: SEVERITY.information, ed: [0x00, 0xff, 0xff], text: 'System ACPI Power State: S0/G0 working' },
  'power-loss': { sensorType: 0x22, offset: 0x07, deassert: false, entity: 0x17, severity: SEVERITY.nonCritical, ed: [0x07, 0xff, 0xff], text: 'System ACPI Power State: G3/Mechanical Off' },
  'power-restore': { sensorType: 0x25, offset: 0x00, deassert: false, entity: 0x26, severity: SEVERITY.information, ed: [0x00, 0xff, 0xff], text: 'Entity Presence: Entity Present (management NIC powered)' },
  'cable-pull': { sensorType: 0x05, offset: 0x04, deassert: false, entity: 0x26, severity: SEVERITY.nonCritical, ed: [0x04, 0xff, 0xff], text: 'Physical Security: LAN Leash Lost' },
  'cable-plug': { sensorType: 0x05, offset: 0x04, deassert: true, entity: 0x26, severity: SEVERITY.ok, ed: [0x04, 0xff, 0xff], text: 'Physical Security: LAN Leash Lost (Deassertion)' },
  'security': { sensorType: 0x06, offset: 0x05, deassert: false, entity: 0x26, severity: SEVERITY.nonCritical, ed: [0xa5, 0x00, 0x00], text: 'Platform Security Violation Attempt: Out-of-band Access Password Violation (ED2 replays, ED3 ICV failures)' },
};

const BY_SPECIFIC = new Map<number, AlertEvent>(
  (Object.entries(ALERT_CODES) as [AlertEvent, AlertCode][]).map(([e, c]) => [specificTrap(c.sensorType, EVENT_TYPE_SENSOR_SPECIFIC, c.offset, c.deassert), e]),
);

/** The specific-trap number of one of Lifeline's events. */
export function alertSpecific(event: AlertEvent): number {
  const c = ALERT_CODES[event];
  return specificTrap(c.sensorType, EVENT_TYPE_SENSOR_SPECIFIC, c.offset, c.deassert);
}

/** The event a specific-trap number stands for, or null (another sender's event). */
export function alertEventOf(specific: number): AlertEvent | null {
  return BY_SPECIFIC.get(specific) ?? null;
}

/** Seconds since 1998-01-01 00:00 UTC for a time in Unix ms (0 before 1998: "unspecified"). */
export function petTimestamp(unixMs: number): number {
  const s = Math.floor(unixMs / 1000) - PET_EPOCH_UNIX_S;
  return s > 0 && s <= 0xffffffff ? s : 0;
}

/** Unix ms for a PET timestamp (null: unspecified). */
export function petTimeMs(timestamp: number): number | null {
  return timestamp === 0 ? null : (timestamp + PET_EPOCH_UNIX_S) * 1000;
}
