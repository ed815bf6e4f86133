/**
 * The IPMI users record in the EEPROM (firmware/eeprom-ipmi-users.ts; DESIGN §3, §9): two ping-pong copies at pages
 * 101-108 and 109-116 with the same CRC and torn-write rules as the configuration record. Every torn write is
 * enumerated (every page write x every byte 0..64): boot finds the old users or the new ones, never a mix.
 */
import assert from 'node:assert/strict';
import { MemoryEepromDevice, TearingEepromDevice, TornWriteError, ERASED } from '../../firmware/eeprom-device.js';
import { EEPROM_PAGE, EEPROM_SIZE, EepromImage, type NicConfig } from '../../firmware/eeprom-image.js';
import { EepromIpmiUsers, IPMI_USERS_PAGES, IPMI_USERS_RECORD_PAGES } from '../../firmware/eeprom-ipmi-users.js';
import { KIND, encodeRecord, writePages } from '../../firmware/eeprom-record.js';
import { DEFAULT_IPMI_USERS, IPMI_USERS_RECORD_MAX, type IpmiUsersConfig } from '../../firmware/ipmi/ipmi-users-record.js';
import { isLifelineError } from '../../common/errors.js';

const FILE = '/var/lib/lifeline/nic-0009.eeprom';
const CONFIG: NicConfig = { securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'none', key: new Uint8Array(32) }, clusterPolicy: '' };
const ONE: IpmiUsersConfig = { enabled: true, users: [{ name: 'admin', password: 'secret-pw', privilege: 'administrator', enabled: true }] };
const TWO: IpmiUsersConfig = {
  enabled: true,
  users: [
    { name: 'admin', password: 'new-secret', privilege: 'administrator', enabled: true },
    { name: 'oper', password: 'op-pw', privilege: 'operator', enabled: false },
  ],
};
/** Eight users with the longest names and passwords: the largest record (323-byte users payload, 6 pages). */
const FULL: IpmiUsersConfig = {
  enabled: true,
  users: Array.from({ length: 8 }, (_, i) => ({ name: `user-${i}-abcdefghi`.slice(0, 16), password: `pw-${i}-`.padEnd(20, 'x'), privilege: 'operator' as const, enabled: true })),
};

const plain = (c: Readonly<IpmiUsersConfig>): IpmiUsersConfig => ({ enabled: c.enabled, users: c.users.map((u) => ({ ...u })) });
const load = (image: Uint8Array) => EepromIpmiUsers.load(new MemoryEepromDevice(image), FILE);

function formatted(users?: IpmiUsersConfig): MemoryEepromDevice {
  const dev = new MemoryEepromDevice(EEPROM_SIZE);
  EepromImage.format(dev, 'NIC-0009', CONFIG, FILE, users);
  return dev;
}

/** An image formatted before the record existed: both copies erased. */
function withoutRecord(): MemoryEepromDevice {
  const dev = formatted();
  for (const p of IPMI_USERS_PAGES) dev.image.fill(ERASED, p * EEPROM_PAGE, (p + IPMI_USERS_RECORD_PAGES) * EEPROM_PAGE);
  return dev;
}

function expectCode(fn: () => unknown, code: string, ...mentions: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isLifelineError(e), `expected a coded error, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const m of mentions) assert.match(e.message, m);
    return true;
  });
}

/**
 * Runs `write(config)` on a copy of `base`, tearing page write w after b bytes, for every w and every b; boot must
 * find `before` or `after`. Returns the number of cases and how many booted with a recovery note.
 */
function tearEverywhere(base: Uint8Array, config: IpmiUsersConfig, before: IpmiUsersConfig, after: IpmiUsersConfig): { cases: number; recovered: number; old: number; neu: number } {
  const counter = new TearingEepromDevice(base, { atWrite: Number.MAX_SAFE_INTEGER, atByte: 0 });
  EepromIpmiUsers.load(counter, FILE).write(config);
  const out = { cases: 0, recovered: 0, old: 0, neu: 0 };
  for (let w = 0; w < counter.writes; w++) {
    for (let b = 0; b <= EEPROM_PAGE; b++) {
      const dev = new TearingEepromDevice(base, { atWrite: w, atByte: b });
      assert.throws(() => EepromIpmiUsers.load(dev, FILE).write(config), TornWriteError);
      const back = load(dev.image);
      const got = plain(back.config);
      if (JSON.stringify(got) === JSON.stringify(before)) out.old++;
      else {
        assert.deepEqual(got, after, `tear ${w}/${b}: neither the old users nor the new ones`);
        out.neu++;
      }
      if (back.recovered.length > 0) out.recovered++;
      out.cases++;
    }
  }
  return out;
}

describe('EEPROM IPMI users record (pages 101-116, DESIGN §9)', () => {
  it('format writes lanplus off with no users into copy A; the record reads back', () => {
    const back = load(formatted().image);
    assert.deepEqual(plain(back.config), DEFAULT_IPMI_USERS);
    assert.deepEqual(back.recovered, []);
    assert.equal(back.pageWrites, 2, 'copy B erased, one page of record');
  });

  it('format with users (nic-emulator start --ipmi-user) keeps them, passwords included', () => {
    assert.deepEqual(plain(load(formatted(TWO).image).config), TWO);
  });

  it('writes alternate between the copies; the newest wins at boot; page writes survive a reboot', () => {
    const dev = formatted();
    const r = EepromIpmiUsers.load(dev, FILE);
    r.write(ONE);
    assert.equal(dev.image[IPMI_USERS_PAGES[1] * EEPROM_PAGE], KIND.ipmiUsers, 'the first write goes to copy B');
    assert.deepEqual(plain(load(dev.image).config), ONE);
    r.write(TWO);
    assert.deepEqual(plain(load(dev.image).config), TWO);
    r.write(FULL);
    const back = load(dev.image);
    assert.deepEqual(plain(back.config), FULL);
    assert.equal(back.pageWrites, r.pageWrites);
    assert.equal(r.pageWrites, 2 + 1 + 1 + 6, 'format 2, then 1 + 1 + 6 pages');
  });

  it('the largest users payload the record allows (448 bytes) fits the 8 pages of a copy', () => {
    const frame = encodeRecord(KIND.ipmiUsers, 1, new Uint8Array(4 + IPMI_USERS_RECORD_MAX));
    assert.ok(frame.length <= IPMI_USERS_RECORD_PAGES * EEPROM_PAGE, `${frame.length} bytes`);
  });

  it('an image formatted before the record existed (both copies erased) boots with lanplus off; the first write goes to copy A', () => {
    const dev = withoutRecord();
    const r = EepromIpmiUsers.load(dev, FILE);
    assert.deepEqual(plain(r.config), DEFAULT_IPMI_USERS);
    assert.deepEqual(r.recovered, []);
    r.write(ONE);
    assert.equal(dev.image[IPMI_USERS_PAGES[0] * EEPROM_PAGE], KIND.ipmiUsers);
    assert.deepEqual(plain(load(dev.image).config), ONE);
  });

  it('bad users are E_USAGE and nothing is written (the password is not repeated)', () => {
    const dev = formatted();
    const before = dev.image.slice();
    const r = EepromIpmiUsers.load(dev, FILE);
    expectCode(() => r.write({ enabled: true, users: [{ name: 'bad name', password: 'hunter2', privilege: 'user', enabled: true }] }), 'E_USAGE', /user name/);
    assert.throws(() => r.write({ enabled: true, users: [{ name: 'x', password: 'p'.repeat(21), privilege: 'user', enabled: true }] }), (e: Error) => !e.message.includes('ppppp'));
    assert.deepEqual(dev.image, before);
  });

  describe('torn writes (every page write x every byte 0..64)', () => {
    it('replacing the record formatted in copy A (write into copy B) -> the old users or the new ones', () => {
      const r = tearEverywhere(formatted(ONE).image, FULL, ONE, FULL);
      assert.equal(r.cases, 6 * 65);
      assert.ok(r.old > 0 && r.neu > 0 && r.recovered > 0, JSON.stringify(r));
    });

    it('the next write (back into copy A, over the older record) -> the old users or the new ones', () => {
      const dev = formatted();
      EepromIpmiUsers.load(dev, FILE).write(TWO);
      const r = tearEverywhere(dev.image.slice(), ONE, TWO, ONE);
      assert.equal(r.cases, 65);
      assert.ok(r.old > 0 && r.neu > 0, JSON.stringify(r));
    });

    it('the first write into an image without the record -> lanplus off (noted: a torn first write) or the new users', () => {
      const r = tearEverywhere(withoutRecord().image, TWO, DEFAULT_IPMI_USERS, TWO);
      assert.equal(r.cases, 65);
      assert.ok(r.old > 0 && r.neu > 0 && r.recovered > 0, JSON.stringify(r));
    });

    it('disabling lanplus torn -> still on with the old users, or off', () => {
      const off: IpmiUsersConfig = { enabled: false, users: [] };
      const r = tearEverywhere(formatted(TWO).image, off, TWO, off);
      assert.ok(r.old > 0 && r.neu > 0, JSON.stringify(r));
    });
  });

  describe('what boot refuses (E_EEPROM_CRC naming the file and the record)', () => {
    it('both copies bad', () => {
      const dev = formatted();
      EepromIpmiUsers.load(dev, FILE).write(ONE);
      dev.image[IPMI_USERS_PAGES[0] * EEPROM_PAGE + 9] ^= 0x01;
      dev.image[IPMI_USERS_PAGES[1] * EEPROM_PAGE + 9] ^= 0x01;
      expectCode(() => load(dev.image), 'E_EEPROM_CRC', /nic-0009\.eeprom/, /IPMI users record \(both copies\)/, /copy A \(pages 101-108\)/, /copy B \(pages 109-116\)/);
    });

    it('a copy whose CRC holds but whose users do not decode (no fallback to the older copy)', () => {
      const dev = formatted(ONE);
      const payload = Uint8Array.of(0, 0, 0, 9, 0x01, 0x02, 0x00); // page count 9 | format 01h, reserved flag bit 1 set, 0 users
      writePages(dev, IPMI_USERS_PAGES[1], encodeRecord(KIND.ipmiUsers, 2, payload));
      expectCode(() => load(dev.image), 'E_EEPROM_CRC', /copy B \(pages 109-116\)/, /reserved flag bits/);
    });

    it('a bad older copy beside a good newer one: the newer one, with a note', () => {
      const dev = formatted();
      EepromIpmiUsers.load(dev, FILE).write(ONE); // generation 2 in copy B
      dev.image[IPMI_USERS_PAGES[0] * EEPROM_PAGE + 12] ^= 0x80;
      const back = load(dev.image);
      assert.deepEqual(plain(back.config), ONE);
      assert.match(back.recovered.join('\n'), /copy A \(pages 101-108\): CRC-32/);
    });
  });
});
