/**
 * The BMC's IPMI users (IPMI v2.0 §22.26-22.30 user model; DESIGN §9 "users and privileges in the EEPROM").
 *
 * At most 8 users; user ID 1 is the spec's null user (fixed, empty name), which this BMC keeps disabled, so
 * the configured users take IDs 2-9 in order. Names are 1-16 printable ASCII characters (no space, no ':',
 * so `--ipmi-user NAME:PASSWORD[:PRIV]` can name every user); passwords are 1-20 bytes of UTF-8 with no NUL
 * (K_UID is at most 20 bytes, §13.31; ipmitool refuses longer ones). Names are matched byte for byte,
 * case-sensitively, as RAKP 1 carries them.
 */
import { UsageError } from '../../common/errors.js';
import { PRIVILEGE_CODE, PRIVILEGE_NAMES, type PrivilegeName } from './ipmi-types.js';

export interface IpmiUser {
  name: string;
  password: string;
  privilege: PrivilegeName;
  enabled: boolean;
}

export const IPMI_MAX_USERS = 8;
export const IPMI_NAME_MAX = 16;
export const IPMI_PASSWORD_MAX = 20;
/** User IDs 1 (null user) .. 9 (Get User Access "maximum number of user IDs", §22.27). */
export const IPMI_MAX_USER_ID = IPMI_MAX_USERS + 1;

const utf8 = new TextEncoder();
const NAME_RE = /^[\x21-\x39\x3b-\x7e]{1,16}$/; // printable ASCII without space and ':'

/** Why `name` is not a valid user name, or null. */
export function nameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'a user name must be a string';
  if (!NAME_RE.test(name)) {
    return `user name ${JSON.stringify(name)} must be 1-${IPMI_NAME_MAX} printable ASCII characters without spaces or ':'`;
  }
  return null;
}

/** Why `password` is not a valid password, or null (the message never repeats the password). */
export function passwordProblem(password: unknown): string | null {
  if (typeof password !== 'string') return 'a password must be a string';
  const n = utf8.encode(password).length;
  if (n < 1 || n > IPMI_PASSWORD_MAX) return `a password must be 1-${IPMI_PASSWORD_MAX} bytes of UTF-8, got ${n} bytes`;
  if (password.includes('\0')) return 'a password must not contain NUL characters';
  return null;
}

/** Throws UsageError('E_USAGE') naming the first bad user; a valid list passes silently. */
export function assertIpmiUsers(users: readonly IpmiUser[]): void {
  if (!Array.isArray(users)) throw new UsageError('E_USAGE', 'IPMI users must be an array of { name, password, privilege, enabled }');
  if (users.length > IPMI_MAX_USERS) {
    throw new UsageError('E_USAGE', `at most ${IPMI_MAX_USERS} IPMI users fit in the NIC, got ${users.length}: remove some`);
  }
  const seen = new Set<string>();
  users.forEach((u, i) => {
    const where = `IPMI user ${i + 1}`;
    if (typeof u !== 'object' || u === null) throw new UsageError('E_USAGE', `${where}: expected { name, password, privilege, enabled }`);
    const bad = nameProblem(u.name) ?? passwordProblem(u.password);
    if (bad) throw new UsageError('E_USAGE', `${where}: ${bad}`);
    if (!PRIVILEGE_NAMES.includes(u.privilege)) {
      throw new UsageError('E_USAGE', `${where} (${u.name}): privilege must be one of ${PRIVILEGE_NAMES.join(', ')}, got ${String(u.privilege)}`);
    }
    if (typeof u.enabled !== 'boolean') throw new UsageError('E_USAGE', `${where} (${u.name}): enabled must be true or false`);
    if (seen.has(u.name)) throw new UsageError('E_USAGE', `${where}: the name ${u.name} is given twice; user names must be unique`);
    seen.add(u.name);
  });
}

export interface UserEntry {
  /** IPMI user ID (2-9). */
  id: number;
  user: Readonly<IpmiUser>;
  /** Privilege limit as a code (2 user, 3 operator, 4 administrator). */
  privilege: number;
  /** K_UID: the password bytes (HMAC pads them with zeros, cat. §4.5). */
  key: Uint8Array;
  /** The name's bytes as RAKP 1 carries them. */
  nameBytes: Uint8Array;
}

/** The users, looked up by RAKP 1 name bytes or by user ID. Validates on construction. */
export class UserDirectory {
  private readonly entries: UserEntry[];

  constructor(users: readonly IpmiUser[]) {
    assertIpmiUsers(users);
    this.entries = users.map((u, i) => ({
      id: i + 2,
      user: Object.freeze({ ...u }),
      privilege: PRIVILEGE_CODE[u.privilege],
      key: utf8.encode(u.password),
      nameBytes: utf8.encode(u.name),
    }));
  }

  byName(name: Uint8Array): UserEntry | null {
    for (const e of this.entries) {
      if (e.nameBytes.length === name.length && e.nameBytes.every((c, i) => c === name[i])) return e;
    }
    return null;
  }

  /** The entry with user ID `id` (2-9), or null (ID 1 is the disabled null user; unconfigured IDs are empty). */
  byId(id: number): UserEntry | null {
    return this.entries.find((e) => e.id === id) ?? null;
  }

  get enabledCount(): number {
    return this.entries.filter((e) => e.user.enabled).length;
  }

  get size(): number {
    return this.entries.length;
  }
}

const PRIVILEGE_WORDS: Readonly<Record<string, PrivilegeName>> = {
  user: 'user', operator: 'operator', administrator: 'administrator', admin: 'administrator',
};

/**
 * Parses `--ipmi-user NAME:PASSWORD[:PRIV]` into an enabled user. PRIV is user, operator or administrator
 * (admin for short; any case) and defaults to administrator, the level ipmitool asks for unless told `-L`.
 * The password is everything between the first ':' and a trailing ':PRIV', so it may contain ':' itself; a
 * password that ends in ':user' (etc.) needs the privilege written out after it. Errors never repeat the
 * password.
 */
export function parseIpmiUserSpec(spec: string): IpmiUser {
  const usage = (why: string) => new UsageError('E_USAGE', `--ipmi-user: ${why}; expected NAME:PASSWORD[:PRIV] with PRIV user, operator or administrator`);
  if (typeof spec !== 'string') throw usage('expected a string');
  const colon = spec.indexOf(':');
  if (colon < 0) throw usage('no ":" between the name and the password');
  const name = spec.slice(0, colon);
  let password = spec.slice(colon + 1);
  let privilege: PrivilegeName = 'administrator';
  const last = password.lastIndexOf(':');
  if (last >= 0) {
    const word = PRIVILEGE_WORDS[password.slice(last + 1).toLowerCase()];
    if (word) {
      privilege = word;
      password = password.slice(0, last);
    }
  }
  const bad = nameProblem(name) ?? passwordProblem(password);
  if (bad) throw usage(bad);
  return { name, password, privilege, enabled: true };
}
