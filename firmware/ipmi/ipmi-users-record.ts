/**
 * The payload of the NIC's IPMI users record (DESIGN §9: "users and privileges in the EEPROM"). The EEPROM
 * image frames it (kind, generation, CRC-32, ping-pong copies: firmware/eeprom-image.ts); this file defines
 * only the payload, at most IPMI_USERS_RECORD_MAX (448) bytes, little-endian like the rest of IPMI:
 *
 *   +0  format      01h
 *   +1  flags       bit 0: IPMI-over-LAN (lanplus) enabled; bits 7:1 reserved, 0
 *   +2  count       number of users, 0-8
 *   then per user, in user-ID order (ID 2 first):
 *       +0 flags            bit 0: user enabled; bits 7:1 reserved, 0
 *       +1 privilege        02h user, 03h operator, 04h administrator (IPMI privilege codes)
 *       +2 name length      1-16
 *       +3 password length  1-20
 *       +4 name             printable ASCII, no space or ':'
 *          password         UTF-8, no NUL
 *
 * At most 3 + 8 x 40 = 323 bytes. Passwords are stored as they are: RAKP needs K_UID itself (IPMI v2.0
 * §13.31), which is why the EEPROM file must stay private (0600).
 *
 * Bad input given locally (encodeIpmiUsers) is a UsageError('E_USAGE'); a payload that does not decode is an
 * IpmiUsersRecordError (a ProtocolError, code E_IPMI_USERS) whose `detail` the image maps to its own
 * corrupt-record error, naming the file and the copy.
 */
import { ProtocolError, UsageError } from '../../common/errors.js';
import { PRIVILEGE_CODE, type PrivilegeName } from './ipmi-types.js';
import { assertIpmiUsers, IPMI_MAX_USERS, IPMI_NAME_MAX, IPMI_PASSWORD_MAX, nameProblem, passwordProblem, type IpmiUser } from './users.js';

export { parseIpmiUserSpec } from './users.js';

export const IPMI_USERS_RECORD_MAX = 448;
export const IPMI_USERS_FORMAT = 0x01;

export interface IpmiUsersConfig {
  /** IPMI over LAN answers on port 623 at all (off by default, DESIGN §9). */
  enabled: boolean;
  users: IpmiUser[];
}

export class IpmiUsersRecordError extends ProtocolError {
  constructor(readonly detail: string) {
    super('E_IPMI_USERS', `IPMI users record: ${detail}. The record cannot be trusted: write the IPMI users again, or restore the EEPROM image from a backup`);
  }
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });
const fromAscii = new TextDecoder('latin1');
const PRIVILEGE_BY_CODE: Readonly<Record<number, PrivilegeName>> = { 2: 'user', 3: 'operator', 4: 'administrator' };

export const DEFAULT_IPMI_USERS: Readonly<IpmiUsersConfig> = Object.freeze({ enabled: false, users: [] });

export function encodeIpmiUsers(config: IpmiUsersConfig): Uint8Array {
  if (typeof config !== 'object' || config === null || typeof config.enabled !== 'boolean') {
    throw new UsageError('E_USAGE', 'IPMI users config must be { enabled: boolean, users: [...] }');
  }
  assertIpmiUsers(config.users);
  const out: number[] = [IPMI_USERS_FORMAT, config.enabled ? 1 : 0, config.users.length];
  for (const u of config.users) {
    const name = utf8.encode(u.name);
    const password = utf8.encode(u.password);
    out.push(u.enabled ? 1 : 0, PRIVILEGE_CODE[u.privilege], name.length, password.length, ...name, ...password);
  }
  return Uint8Array.from(out);
}

export function decodeIpmiUsers(p: Uint8Array): IpmiUsersConfig {
  const bad = (detail: string) => new IpmiUsersRecordError(detail);
  if (!(p instanceof Uint8Array)) throw new UsageError('E_USAGE', 'decodeIpmiUsers: expected a Uint8Array');
  if (p.length > IPMI_USERS_RECORD_MAX) throw bad(`payload is ${p.length} bytes, more than the ${IPMI_USERS_RECORD_MAX} it may have`);
  if (p.length < 3) throw bad(`payload is ${p.length} bytes, shorter than its 3-byte header`);
  if (p[0] !== IPMI_USERS_FORMAT) throw bad(`format ${p[0]} is not ${IPMI_USERS_FORMAT}; use the Lifeline release that wrote it`);
  if (p[1] & 0xfe) throw bad(`reserved flag bits are set (0x${p[1].toString(16)})`);
  const count = p[2];
  if (count > IPMI_MAX_USERS) throw bad(`it claims ${count} users; at most ${IPMI_MAX_USERS} fit`);
  const users: IpmiUser[] = [];
  const seen = new Set<string>();
  let o = 3;
  for (let i = 0; i < count; i++) {
    const where = `user ${i + 1} (at byte ${o})`;
    if (o + 4 > p.length) throw bad(`${where} is cut short`);
    const [flags, priv, nameLength, passwordLength] = p.subarray(o, o + 4);
    if (flags & 0xfe) throw bad(`${where}: reserved flag bits are set (0x${flags.toString(16)})`);
    const privilege = PRIVILEGE_BY_CODE[priv];
    if (!privilege) throw bad(`${where}: privilege 0x${priv.toString(16)} is not user (2), operator (3) or administrator (4)`);
    if (nameLength < 1 || nameLength > IPMI_NAME_MAX) throw bad(`${where}: name length ${nameLength} is not 1-${IPMI_NAME_MAX}`);
    if (passwordLength < 1 || passwordLength > IPMI_PASSWORD_MAX) throw bad(`${where}: password length ${passwordLength} is not 1-${IPMI_PASSWORD_MAX}`);
    o += 4;
    if (o + nameLength + passwordLength > p.length) throw bad(`${where} is cut short`);
    const name = fromAscii.decode(p.subarray(o, o + nameLength));
    o += nameLength;
    let password: string;
    try {
      password = fromUtf8.decode(p.subarray(o, o + passwordLength));
    } catch {
      throw bad(`${where}: the password is not UTF-8`);
    }
    o += passwordLength;
    const problem = nameProblem(name) ?? passwordProblem(password);
    if (problem) throw bad(`${where}: ${problem}`);
    if (seen.has(name)) throw bad(`${where}: the name ${name} appears twice`);
    seen.add(name);
    users.push({ name, password, privilege, enabled: flags === 1 });
  }
  if (o !== p.length) throw bad(`${p.length - o} bytes follow the last user`);
  return { enabled: p[1] === 1, users };
}
