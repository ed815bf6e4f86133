/**
 * The IPMI v2.0 vocabulary the lanplus responder speaks: privilege levels, RMCP+ payload types, completion
 * codes and RMCP+ status codes, and the shapes the responder exchanges with its caller (host view, effects).
 * Byte layouts and the clients' habits: ../shared/reference/ipmi-rmcpplus-catalogue.md (cited as "cat. §n").
 */
import type { AsfCommandEvent, HostState } from '../host-state.js';

/** Privilege levels (IPMI v2.0 §6.8, Set Session Privilege Level §22.18). 0 = "no change" / "highest matching". */
export const PRIV = { callback: 1, user: 2, operator: 3, administrator: 4, oem: 5 } as const;
export type PrivilegeName = 'user' | 'operator' | 'administrator';
export const PRIVILEGE_CODE: Readonly<Record<PrivilegeName, number>> = { user: 2, operator: 3, administrator: 4 };
export const PRIVILEGE_NAMES: readonly PrivilegeName[] = ['user', 'operator', 'administrator'];

export function privilegeName(code: number): string {
  return ['none', 'callback', 'user', 'operator', 'administrator', 'oem'][code] ?? `0x${code.toString(16)}`;
}

/** RMCP+ payload types (IPMI v2.0 §13.27.3, table 13-16; cat. §1.3). */
export const PAYLOAD = {
  ipmi: 0x00, sol: 0x01, oem: 0x02,
  openSessionRequest: 0x10, openSessionResponse: 0x11,
  rakp1: 0x12, rakp2: 0x13, rakp3: 0x14, rakp4: 0x15,
} as const;

/** Session header Authentication Type / Format byte (§13.6): 00h none (IPMI 1.5), 06h RMCP+. */
export const AUTH_TYPE_NONE = 0x00;
export const AUTH_TYPE_RMCPPLUS = 0x06;

/** Network functions (§5.1, table 5-1), requests (even); a response is netFn + 1. */
export const NETFN = { chassis: 0x00, app: 0x06, storage: 0x0a } as const;

/** Generic completion codes (§5.2, table 5-2) and the command-specific ones used here. */
export const CC = {
  ok: 0x00,
  invalidCommand: 0xc1,
  requestLengthInvalid: 0xc7,
  parameterOutOfRange: 0xc9,
  invalidDataField: 0xcc,
  insufficientPrivilege: 0xd4,
  notSupportedInPresentState: 0xd5,
  /** Set Session Privilege Level (§22.18): requested level not available for this user. */
  privilegeNotAvailable: 0x80,
  /** Set Session Privilege Level: requested level exceeds the user's or channel's limit. */
  privilegeExceedsLimit: 0x81,
  /** Close Session (§22.19): invalid session ID in request. */
  invalidSessionId: 0x87,
  /** Set/Get System Boot Options (§28.12, §28.13): parameter not supported. */
  bootParameterNotSupported: 0x80,
  /** Set System Boot Options: attempt to set 'set in progress' while not in 'set complete'. */
  bootSetInProgress: 0x81,
} as const;

/** RMCP+ and RAKP message status codes (§13.24, table 13-15; cat. §4.6). */
export const RAKP_STATUS = {
  ok: 0x00,
  insufficientResources: 0x01,
  invalidSessionId: 0x02,
  invalidRole: 0x09,
  unauthorizedRole: 0x0a,
  invalidNameLength: 0x0c,
  unauthorizedName: 0x0d,
  invalidIntegrityCheckValue: 0x0f,
  noCipherSuiteMatch: 0x11,
  illegalParameter: 0x12,
} as const;

/** What the responder needs to know of the emulated host (firmware/host-state.ts). */
export interface IpmiHostView { readonly state: HostState }

export interface IpmiEndpoint { address: string; port: number }

export type IpmiEffect =
  | { kind: 'send'; to: IpmiEndpoint; bytes: Uint8Array }
  | {
      kind: 'host-command';
      /** The ASF command event the caller applies to the host (firmware/host-state.ts transition()). */
      command: AsfCommandEvent;
      /** What the IPMI client asked for, e.g. 'chassis control: hard reset'. */
      ipmi: string;
      user: string;
      /** The BMC-side session ID (SID_C) the command came in on. */
      sessionId: number;
    }
  | { kind: 'log'; level: 'info' | 'warn'; msg: string; fields: Record<string, unknown> };

/** Why a request was refused by policy (answered with an error status, or dropped where the protocol has no answer). */
export type IpmiRefusal =
  | 'cipher-0' // Open Session proposing RAKP-none / no integrity / no confidentiality (CVE-2013-4782 and kin)
  | 'cipher-suite' // any other suite than 3 and 17
  | 'null-user' // RAKP 1 with an empty user name (anonymous / null user login)
  | 'unknown-user'
  | 'disabled-user'
  | 'role' // RAKP 1 asked for a role the user does not hold (username+privilege lookup) or an invalid one
  | 'wrong-password' // RAKP 3 did not verify: the console does not know the user's password
  | 'ipmi-1.5' // IPMI 1.5 session traffic (Get Session Challenge, Activate Session, 1.5 session headers)
  | 'session-limit' // the active-session limit was reached
  | 'privilege' // an in-session command or privilege change above the session's level
  | 'bad-request'; // a set-up message read but wrong (SID_M 0, a user name over 16 bytes, a malformed algorithm record)

export const IPMI_REFUSALS: readonly IpmiRefusal[] = [
  'cipher-0', 'cipher-suite', 'null-user', 'unknown-user', 'disabled-user', 'role', 'wrong-password', 'ipmi-1.5',
  'session-limit', 'privilege', 'bad-request',
];

/** Why a datagram was dropped without an answer. */
export type IpmiDrop =
  | 'malformed' // the RMCP / session header / payload does not decode
  | 'payload-type' // a payload type this BMC does not serve (SOL, OEM, a response type)
  | 'unknown-session' // a session ID that names no session (or a RAKP for a session in the wrong state)
  | 'wrong-source' // a packet for a session from another address:port than the one that opened it
  | 'unauthenticated' // an in-session packet without the integrity (or confidentiality) the suite requires
  | 'replay' // an in-session sequence number received before
  | 'out-of-window' // an in-session sequence number outside the sliding window (or 0)
  | 'integrity' // the AuthCode does not verify
  | 'confidentiality' // the payload does not decrypt to a well-padded plaintext
  | 'checksum' // an IPMI message checksum is wrong
  | 'rakp3-error' // RAKP 3 carrying an error status: the console gave up on RAKP 2 (the half-open session ends)
  | 'sessionless-command'; // an IPMI command outside a session other than the pre-session ones

export const IPMI_DROPS: readonly IpmiDrop[] = [
  'malformed', 'payload-type', 'unknown-session', 'wrong-source', 'unauthenticated', 'replay', 'out-of-window',
  'integrity', 'confidentiality', 'checksum', 'rakp3-error', 'sessionless-command',
];

export interface IpmiCounters {
  received: number;
  sent: number;
  sessions: {
    /** Open Session Requests answered with status 00h (a half-open session exists). */
    opened: number;
    /** Sessions that completed RAKP 3 / 4 and became active. */
    activated: number;
    /** Active sessions ended by Close Session. */
    closed: number;
    /** Active sessions closed by the idle timeout. */
    idleClosed: number;
    /** Half-open sessions that expired before RAKP 3. */
    halfOpenExpired: number;
    /** Half-open sessions evicted to make room (by age, per source or overall). */
    halfOpenEvicted: number;
  };
  /** In-session IPMI requests answered (any completion code). */
  commands: number;
  /** Host commands handed to the caller (chassis control). */
  hostCommands: number;
  refused: Record<IpmiRefusal, number>;
  dropped: Record<IpmiDrop, number>;
}

export function newCounters(): IpmiCounters {
  return {
    received: 0,
    sent: 0,
    sessions: { opened: 0, activated: 0, closed: 0, idleClosed: 0, halfOpenExpired: 0, halfOpenEvicted: 0 },
    commands: 0,
    hostCommands: 0,
    refused: Object.fromEntries(IPMI_REFUSALS.map((r) => [r, 0])) as Record<IpmiRefusal, number>,
    dropped: Object.fromEntries(IPMI_DROPS.map((r) => [r, 0])) as Record<IpmiDrop, number>,
  };
}
