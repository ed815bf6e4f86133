/**
 * The IPMI users record in the EEPROM (DESIGN §3, §9): whether the NIC answers IPMI 2.0 RMCP+ ("lanplus") on UDP 623,
 * and the users and privileges it knows. Two ping-pong copies, each an eeprom-record.ts frame of kind 0x07:
 *
 *   pages 101-108  0x1940  copy A
 *   pages 109-116  0x1B40  copy B
 *   payload: page writes of this record so far u32 (the region's running count, as the configuration record keeps
 *            its own) | the users payload of ipmi/ipmi-users-record.ts (format 01h, lanplus flag, up to 8 users;
 *            at most 448 bytes, so a record takes at most 8 pages)
 *
 * Same CRC and torn-write rules as the configuration record (eeprom-image.ts): a write goes into the older copy, so
 * a write torn by a power loss leaves the current copy in force; boot takes the newest copy whose CRC holds and
 * notes a bad other copy. format() writes generation 1 into copy A, so an image formatted by this firmware always
 * holds one good copy. What is not a good copy:
 *   both copies blank        never written (an image formatted before this record existed): lanplus off, no users
 *   one bad, the other blank the first write into such an image, torn (or that record gone bad since; nobody can
 *                            tell): lanplus off, no users, noted in `recovered` — the secure default, not a guess
 *   both bad                 E_EEPROM_CRC naming both copies
 *   a good CRC over a payload that does not decode: E_EEPROM_CRC naming the copy and what is wrong in it.
 *
 * Passwords are stored as they are (RAKP needs K_UID itself, IPMI v2.0 §13.31): the EEPROM file is created 0600.
 */
import { ERASED, type EepromDevice } from './eeprom-device.js';
import { EEPROM_PAGE, KIND, corrupt, decodeRecord, encodeRecord, newest, pageRange, writePages, type Decoded } from './eeprom-record.js';
import { UsageError } from '../common/errors.js';
import { putU32, u32 } from '../common/bytes.js';
import { DEFAULT_IPMI_USERS, IpmiUsersRecordError, decodeIpmiUsers, encodeIpmiUsers, type IpmiUsersConfig } from './ipmi/ipmi-users-record.js';

export const IPMI_USERS_PAGES = [101, 109] as const;
export const IPMI_USERS_RECORD_PAGES = 8;
/** Pages format() leaves written in this region: the erased first page of copy B and the record in copy A. */
const FORMAT_ERASED_PAGES = 1;

const copyName = (i: number): string => `IPMI users record copy ${'AB'[i]} (${pageRange(IPMI_USERS_PAGES[i], IPMI_USERS_RECORD_PAGES)})`;

function clone(c: IpmiUsersConfig): Readonly<IpmiUsersConfig> {
  return Object.freeze({ enabled: c.enabled, users: Object.freeze(c.users.map((u) => Object.freeze({ ...u }))) as IpmiUsersConfig['users'] });
}

function encodePayload(c: IpmiUsersConfig, pagesWritten: number): Uint8Array {
  const users = encodeIpmiUsers(c); // UsageError on bad input, before anything is written
  const p = new Uint8Array(4 + users.length);
  putU32(p, 0, pagesWritten);
  p.set(users, 4);
  return p;
}

/** Pages a record of this configuration takes. */
function recordPages(c: IpmiUsersConfig): number {
  return encodeRecord(KIND.ipmiUsers, 0, encodePayload(c, 0)).length / EEPROM_PAGE;
}

export class EepromIpmiUsers {
  readonly #dev: EepromDevice;
  #config: Readonly<IpmiUsersConfig>;
  #generation: number;
  /** The copy holding the current record; -1: none yet (both blank, or a torn first write). */
  #copy: number;
  /** Copies replaced by the other one or ignored at boot, one line each (for the NIC's log). */
  readonly recovered: string[];
  /** Page writes of this region since the image was formatted (format's included; a torn write counts until reboot). */
  pageWrites: number;

  private constructor(dev: EepromDevice, config: IpmiUsersConfig, generation: number, copy: number, pageWrites: number, recovered: string[]) {
    this.#dev = dev;
    this.#config = clone(config);
    this.#generation = generation;
    this.#copy = copy;
    this.pageWrites = pageWrites;
    this.recovered = recovered;
  }

  /**
   * Part of formatting an image (EepromImage.format): erase copy B's first page (no record of an earlier image may
   * come back) and write `config` as generation 1 into copy A.
   */
  static format(dev: EepromDevice, config: IpmiUsersConfig = DEFAULT_IPMI_USERS): void {
    const payload = encodePayload(config, 0); // checks the users before anything is erased
    dev.write(IPMI_USERS_PAGES[1] * EEPROM_PAGE, new Uint8Array(EEPROM_PAGE).fill(ERASED));
    const pages = encodeRecord(KIND.ipmiUsers, 1, payload).length / EEPROM_PAGE;
    putU32(payload, 0, FORMAT_ERASED_PAGES + pages);
    writePages(dev, IPMI_USERS_PAGES[0], encodeRecord(KIND.ipmiUsers, 1, payload));
  }

  /** Read both copies at boot; see the file comment for what is accepted. `name` is the EEPROM file. */
  static load(dev: EepromDevice, name: string): EepromIpmiUsers {
    const copies: Decoded[] = IPMI_USERS_PAGES.map((p, i) =>
      decodeRecord(dev.read(p * EEPROM_PAGE, IPMI_USERS_RECORD_PAGES * EEPROM_PAGE), KIND.ipmiUsers, name, copyName(i)));
    const recovered: string[] = [];
    const i = newest(copies);
    if (i < 0) {
      const bad = copies.map((d, j) => (d.state === 'bad' ? `${copyName(j)}: ${d.why}` : null)).filter((x): x is string => x !== null);
      if (bad.length === 2) throw corrupt(name, 'the IPMI users record (both copies)', bad.join('; '));
      // Both blank: never written. One bad beside a blank one: a torn first write; the secure default, noted.
      if (bad.length === 1) recovered.push(`${bad[0]}; the other copy is blank: a torn first write of the record, lanplus stays off until the users are written again`);
      return new EepromIpmiUsers(dev, DEFAULT_IPMI_USERS, 0, -1, 0, recovered);
    }
    const ok = copies[i] as Extract<Decoded, { state: 'ok' }>;
    const other = copies[1 - i];
    if (other.state === 'bad') recovered.push(`${copyName(1 - i)}: ${other.why}; using ${copyName(i)} (generation ${ok.generation})`);
    const bad = (detail: string) => corrupt(name, copyName(i), detail);
    if (ok.payload.length < 4) throw bad(`payload is ${ok.payload.length} bytes, shorter than its page count`);
    let config: IpmiUsersConfig;
    try {
      config = decodeIpmiUsers(ok.payload.subarray(4));
    } catch (e) {
      if (e instanceof IpmiUsersRecordError) throw bad(e.detail);
      throw e;
    }
    return new EepromIpmiUsers(dev, config, ok.generation, i, u32(ok.payload, 0), recovered);
  }

  /** The users and the lanplus switch as the EEPROM holds them (frozen; never copied per datagram). */
  get config(): Readonly<IpmiUsersConfig> {
    return this.#config;
  }

  /**
   * Replace the record: written into the older copy (a torn write leaves the current one). Bad input is a
   * UsageError (E_USAGE) before anything is written; E_EEPROM_FULL when the generation would pass 2^32-1.
   */
  write(config: IpmiUsersConfig): void {
    const pages = recordPages(config); // validates
    if (this.#generation >= 0xffffffff) throw new UsageError('E_EEPROM_FULL', 'the IPMI users record generation would pass 2^32-1; the part is worn out');
    const generation = this.#generation + 1;
    const copy = this.#copy === 0 ? 1 : 0;
    this.pageWrites += pages; // a torn write still wore the pages
    writePages(this.#dev, IPMI_USERS_PAGES[copy], encodeRecord(KIND.ipmiUsers, generation, encodePayload(config, this.pageWrites)));
    this.#config = clone(config);
    this.#generation = generation;
    this.#copy = copy;
  }
}
