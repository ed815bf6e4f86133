/**
 * What an IPMI command handler sees and returns. Handlers are pure functions of (request, context): they read
 * the BMC's state through the context, push host-command and log effects, and may ask for work after the
 * answer left (Close Session closes its own session only once its answer is sealed under the session keys).
 */
import type { IpmiRequest } from './ipmi-message.js';
import type { IpmiEffect, IpmiHostView, IpmiRefusal } from './ipmi-types.js';
import type { ActiveSession, SessionTable } from './session-table.js';
import type { UserDirectory } from './users.js';
import type { CipherSuiteId } from './cipher-suites.js';
import type { BootOptions } from './boot-options.js';

/** Get Device ID fields (IPMI v2.0 §20.1; cat. §7.2). */
export interface DeviceIdentity {
  deviceId: number;
  deviceRevision: number;
  firmwareMajor: number;
  /** Two BCD digits, e.g. 0x01 for "x.01". */
  firmwareMinor: number;
  /** IANA enterprise number (20 bits). */
  manufacturerId: number;
  productId: number;
  /** Four bytes, or absent (then Get Device ID answers 11 bytes instead of 15). */
  auxFirmwareRevision?: Uint8Array;
}

/** The BMC state commands read and change. */
export interface BmcState {
  /** Replaced as a whole when the NIC's EEPROM gets new users (IpmiLan.setUsers). */
  users: UserDirectory;
  readonly guid: Uint8Array;
  readonly device: Readonly<DeviceIdentity>;
  /** This LAN channel's number (1): what 0Eh ("this channel") stands for. */
  readonly channel: number;
  readonly suites: readonly CipherSuiteId[];
  readonly table: SessionTable;
  readonly boot: BootOptions;
  /** Get Chassis Status "last power event" bit 4: the last power-on came from an IPMI command. */
  powerOnViaIpmi: boolean;
}

export interface CommandContext {
  /** The session the request came in on; null for the pre-session commands. */
  readonly session: ActiveSession | null;
  readonly host: IpmiHostView;
  readonly now: number;
  readonly bmc: BmcState;
  readonly effects: IpmiEffect[];
  readonly afterReply: (() => void)[];
  refuse(reason: IpmiRefusal, fields: Record<string, unknown>): void;
  /** Ends an active session now: counted and logged (session lifecycle lines are not rate-limited). */
  closeSession(sid: number, by: string): void;
}

export interface CommandResult {
  cc: number;
  data?: Uint8Array;
}

export interface CommandSpec {
  name: string;
  /** Lowest session privilege that may run it (IPMI v2.0 Appendix G); 0 = any session. */
  privilege: number;
  /** Also answered outside a session (Get Channel Authentication Capabilities, Get Channel Cipher Suites). */
  sessionless?: boolean;
  run(req: IpmiRequest, ctx: CommandContext): CommandResult;
}

/** Command table key: netFn << 8 | cmd. */
export const commandKey = (netFn: number, cmd: number): number => (netFn << 8) | cmd;

/** "This channel" (0Eh) or the channel's own number. */
export function isThisChannel(bmc: BmcState, byte: number): boolean {
  const ch = byte & 0x0f;
  return ch === 0x0e || ch === bmc.channel;
}
