/**
 * Application netFn (06h) commands (IPMI v2.0 chapters 20 and 22; cat. §2, §7). Privileges follow the
 * spec's command table (Appendix G); the two pre-session commands are also answered outside a session.
 */
import { CC, NETFN, PRIV, privilegeName } from './ipmi-types.js';
import { cipherSuiteRecords, supportedAlgorithms } from './cipher-suites.js';
import { IPMI_MAX_USER_ID, IPMI_NAME_MAX } from './users.js';
import { commandKey, isThisChannel, type CommandContext, type CommandResult, type CommandSpec } from './command-context.js';
import type { IpmiRequest } from './ipmi-message.js';
import { hex32, putU16le, u32le } from './_le.js';

const ok = (...data: number[]): CommandResult => ({ cc: CC.ok, data: Uint8Array.from(data) });
const fail = (cc: number): CommandResult => ({ cc });

/** Get Device ID (§20.1): 11 bytes, or 15 with the aux firmware revision. FreeIPMI drops longer answers (cat. §6). */
function getDeviceId(_req: IpmiRequest, ctx: CommandContext): CommandResult {
  const d = ctx.bmc.device;
  const out = new Uint8Array(d.auxFirmwareRevision ? 15 : 11);
  out[0] = d.deviceId;
  out[1] = d.deviceRevision & 0x0f; // bit 7 clear: no device SDRs
  out[2] = d.firmwareMajor & 0x7f; // bit 7 clear: device available (no update in progress)
  out[3] = d.firmwareMinor;
  out[4] = 0x02; // IPMI version 2.0, BCD with the least significant digit high
  out[5] = 0x80 | 0x04; // additional device support: chassis device, SEL device
  out[6] = d.manufacturerId & 0xff;
  out[7] = (d.manufacturerId >> 8) & 0xff;
  out[8] = (d.manufacturerId >> 16) & 0x0f;
  putU16le(out, 9, d.productId);
  if (d.auxFirmwareRevision) out.set(d.auxFirmwareRevision.subarray(0, 4), 11);
  return { cc: CC.ok, data: out };
}

/**
 * Get Channel Authentication Capabilities (§22.13; cat. §2.1). This BMC offers no IPMI 1.5 authentication
 * type, IPMI v2.0 connections only, non-null user names only, no anonymous login, K_G all zero:
 * `01 80 04 02 00 00 00 00`, which both clients accept. A request without the v2.0 bit comes from an IPMI 1.5
 * client (FreeIPMI's default driver, `ipmitool -I lan`): it gets the same answer, finds no 1.5 type, and is
 * counted as an IPMI 1.5 refusal.
 */
function getChannelAuthCapabilities(req: IpmiRequest, ctx: CommandContext): CommandResult {
  if (req.data.length !== 2) return fail(CC.requestLengthInvalid);
  if (!isThisChannel(ctx.bmc, req.data[0])) return fail(CC.invalidDataField);
  const priv = req.data[1] & 0x0f;
  if (priv < PRIV.callback || priv > PRIV.administrator) return fail(CC.invalidDataField);
  if ((req.data[0] & 0x80) === 0 && !ctx.session) ctx.refuse('ipmi-1.5', { why: 'IPMI 1.5 authentication capabilities asked for' });
  return ok(ctx.bmc.channel, 0x80, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00);
}

/**
 * Get Channel Cipher Suites (§22.15; cat. §2.2): 16 bytes of the record stream per list index. The stream
 * is shorter than 16 bytes, so index 0 carries it all and ipmitool stops there.
 */
function getChannelCipherSuites(req: IpmiRequest, ctx: CommandContext): CommandResult {
  if (req.data.length !== 3) return fail(CC.requestLengthInvalid);
  if (!isThisChannel(ctx.bmc, req.data[0])) return fail(CC.invalidDataField);
  if ((req.data[1] & 0x3f) !== 0x00) return fail(CC.invalidDataField); // only the IPMI payload is served
  const byCipherSuite = (req.data[2] & 0x80) !== 0;
  const index = req.data[2] & 0x3f;
  const stream = byCipherSuite ? cipherSuiteRecords(ctx.bmc.suites) : supportedAlgorithms(ctx.bmc.suites);
  return ok(ctx.bmc.channel, ...stream.subarray(index * 16, index * 16 + 16));
}

/** Get System GUID (§22.14): the same 16 bytes RAKP 2 carries (cat. §4.2). */
function getSystemGuid(_req: IpmiRequest, ctx: CommandContext): CommandResult {
  return { cc: CC.ok, data: Uint8Array.from(ctx.bmc.guid) };
}

/**
 * Set Session Privilege Level (§22.18): 0 reads the current level; a level above the lower of the user's
 * limit and the role asked for in RAKP 1 is refused with 81h. Sessions start at USER (cat. §4.6).
 */
function setSessionPrivilegeLevel(req: IpmiRequest, ctx: CommandContext): CommandResult {
  const s = ctx.session!;
  if (req.data.length !== 1) return fail(CC.requestLengthInvalid);
  if (req.data[0] & 0xf0) return fail(CC.invalidDataField);
  const level = req.data[0] & 0x0f;
  if (level === 0) return ok(s.privilege);
  if (level < PRIV.user || level > PRIV.oem) return fail(CC.invalidDataField);
  if (level > s.maxPrivilege) {
    ctx.refuse('privilege', { sessionId: hex32(s.sidC), user: s.user.user.name, requested: privilegeName(level), max: privilegeName(s.maxPrivilege) });
    return fail(CC.privilegeExceedsLimit);
  }
  s.privilege = level;
  return ok(level);
}

/**
 * Close Session (§22.19): the session's own ID closes it once the answer has left; another active session
 * may be closed by an administrator; anything else is 87h "invalid session ID".
 */
function closeSession(req: IpmiRequest, ctx: CommandContext): CommandResult {
  const s = ctx.session!;
  if (req.data.length !== 4 && req.data.length !== 5) return fail(CC.requestLengthInvalid);
  const sid = u32le(req.data, 0);
  const table = ctx.bmc.table;
  if (sid === s.sidC) {
    ctx.afterReply.push(() => ctx.closeSession(sid, 'close session'));
    return ok();
  }
  if (sid === 0 || !table.getActive(sid)) return fail(CC.invalidSessionId);
  if (s.privilege < PRIV.administrator) {
    ctx.refuse('privilege', { sessionId: hex32(s.sidC), user: s.user.user.name, command: 'close another session' });
    return fail(CC.insufficientPrivilege);
  }
  ctx.closeSession(sid, `close session by ${s.user.user.name} (${hex32(s.sidC)})`);
  return ok();
}

/**
 * Get Channel Info (§22.24), for this LAN channel only: medium 802.3 LAN (04h), protocol IPMB-1.0 (01h, the
 * one LAN channels report), multi-session with the active count, vendor IANA 7154 (IPMI). bmc-info asks for
 * channels 0-11 and ignores the errors (cat. §7.4).
 */
function getChannelInfo(req: IpmiRequest, ctx: CommandContext): CommandResult {
  if (req.data.length !== 1) return fail(CC.requestLengthInvalid);
  if (!isThisChannel(ctx.bmc, req.data[0])) return fail(CC.invalidDataField);
  return ok(ctx.bmc.channel, 0x04, 0x01, 0x80 | Math.min(ctx.bmc.table.activeCount, 0x3f), 0xf2, 0x1b, 0x00, 0x00, 0x00);
}

/** The user ID of a Get User Access / Get User Name request (bits 5:0), or null when out of range (CCh). */
function userId(b: number): number | null {
  const id = b & 0x3f;
  return id >= 1 && id <= IPMI_MAX_USER_ID ? id : null;
}

/**
 * Get User Access (§22.27): maximum user IDs (9: the null user and 8 slots), the user's enable status
 * (01b enabled, 10b disabled; 00b for an empty slot), enabled count, one fixed name (user 1, the null user,
 * kept disabled), and the channel access byte (bit 4 IPMI messaging, bits 3:0 privilege limit, 0Fh no access).
 */
function getUserAccess(req: IpmiRequest, ctx: CommandContext): CommandResult {
  if (req.data.length !== 2) return fail(CC.requestLengthInvalid);
  if (!isThisChannel(ctx.bmc, req.data[0])) return fail(CC.invalidDataField);
  const id = userId(req.data[1]);
  if (id === null) return fail(CC.invalidDataField);
  const u = ctx.bmc.users.byId(id);
  const enableStatus = id === 1 ? 0b10 : !u ? 0b00 : u.user.enabled ? 0b01 : 0b10;
  const access = u ? (u.user.enabled ? 0x10 : 0x00) | u.privilege : 0x0f;
  return ok(IPMI_MAX_USER_ID, (enableStatus << 6) | ctx.bmc.users.enabledCount, 1, access);
}

/** Get User Name (§22.29): 16 bytes, NUL-padded; empty for the null user and unconfigured IDs. */
function getUserName(req: IpmiRequest, ctx: CommandContext): CommandResult {
  if (req.data.length !== 1) return fail(CC.requestLengthInvalid);
  const id = userId(req.data[0]);
  if (id === null) return fail(CC.invalidDataField);
  const out = new Uint8Array(IPMI_NAME_MAX);
  const u = ctx.bmc.users.byId(id);
  if (u) out.set(u.nameBytes);
  return { cc: CC.ok, data: out };
}

const app = (cmd: number, spec: CommandSpec): [number, CommandSpec] => [commandKey(NETFN.app, cmd), spec];

export const APP_COMMANDS: ReadonlyMap<number, CommandSpec> = new Map([
  app(0x01, { name: 'get device id', privilege: PRIV.user, run: getDeviceId }),
  app(0x37, { name: 'get system guid', privilege: PRIV.user, run: getSystemGuid }),
  app(0x38, { name: 'get channel authentication capabilities', privilege: 0, sessionless: true, run: getChannelAuthCapabilities }),
  app(0x3b, { name: 'set session privilege level', privilege: PRIV.user, run: setSessionPrivilegeLevel }),
  app(0x3c, { name: 'close session', privilege: 0, run: closeSession }),
  app(0x42, { name: 'get channel info', privilege: PRIV.user, run: getChannelInfo }),
  app(0x44, { name: 'get user access', privilege: PRIV.operator, run: getUserAccess }),
  app(0x46, { name: 'get user name', privilege: PRIV.operator, run: getUserName }),
  app(0x54, { name: 'get channel cipher suites', privilege: 0, sessionless: true, run: getChannelCipherSuites }),
]);

/** IPMI 1.5 session commands: Get Session Challenge (§22.16) and Activate Session (§22.17). Refused. */
export const IPMI15_SESSION_COMMANDS: ReadonlySet<number> = new Set([commandKey(NETFN.app, 0x39), commandKey(NETFN.app, 0x3a)]);
