/**
 * The IPMI users record payload (firmware/ipmi/ipmi-users-record.ts) and `--ipmi-user NAME:PASSWORD[:PRIV]`.
 */
import assert from 'node:assert/strict';
import { hex } from '../../common/bytes.js';
import { ProtocolError, UsageError } from '../../common/errors.js';
import {
  decodeIpmiUsers, encodeIpmiUsers, parseIpmiUserSpec, IpmiUsersRecordError, IPMI_USERS_RECORD_MAX, type IpmiUsersConfig,
} from '../../firmware/ipmi/ipmi-users-record.js';
import type { IpmiUser } from '../../firmware/ipmi/users.js';
import { prng } from '../support/prng.js';

const isUsage = (e: unknown) => e instanceof UsageError && e.code === 'E_USAGE';
const isRecord = (e: unknown) => e instanceof IpmiUsersRecordError && e instanceof ProtocolError && e.code === 'E_IPMI_USERS';

const FULL: IpmiUsersConfig = {
  enabled: true,
  users: Array.from({ length: 8 }, (_, i): IpmiUser => ({
    name: `user-${i}-`.padEnd(16, 'x'),
    password: i === 3 ? 'pässwörd-ünï' : 'p'.repeat(20),
    privilege: (['user', 'operator', 'administrator'] as const)[i % 3],
    enabled: i !== 5,
  })),
};

describe('IPMI users record payload', () => {
  it('has the documented layout', () => {
    const p = encodeIpmiUsers({ enabled: true, users: [{ name: 'admin', password: 'pw', privilege: 'administrator', enabled: true }, { name: 'ro', password: 'x', privilege: 'user', enabled: false }] });
    assert.equal(hex(p), '01' + '01' + '02' + '01040502' + hex(new TextEncoder().encode('adminpw')) + '00020201' + hex(new TextEncoder().encode('rox')));
  });

  it('round-trips: empty and disabled, and 8 users with the longest names and passwords within 448 bytes', () => {
    for (const c of [{ enabled: false, users: [] }, FULL]) {
      const p = encodeIpmiUsers(c);
      assert.ok(p.length <= IPMI_USERS_RECORD_MAX, `${p.length} bytes`);
      assert.deepEqual(decodeIpmiUsers(p), c);
    }
    assert.equal(encodeIpmiUsers(FULL).length, 3 + 8 * 40 - 4, 'the one UTF-8 password is 16 bytes, not 20');
  });

  it('every truncation, and any extra byte, is an E_IPMI_USERS decode error', () => {
    const p = encodeIpmiUsers(FULL);
    for (let n = 0; n < p.length; n++) assert.throws(() => decodeIpmiUsers(p.subarray(0, n)), isRecord, `length ${n}`);
    assert.throws(() => decodeIpmiUsers(Uint8Array.from([...p, 0])), isRecord);
    assert.throws(() => decodeIpmiUsers(new Uint8Array(IPMI_USERS_RECORD_MAX + 1)), isRecord);
  });

  it('any corrupted byte either still decodes to a valid configuration or is an E_IPMI_USERS error, never anything else', () => {
    const p = encodeIpmiUsers(FULL);
    const r = prng(448);
    for (let i = 0; i < 2000; i++) {
      const q = Uint8Array.from(p);
      q[r.int(q.length)] = r.int(256);
      try {
        const c = decodeIpmiUsers(q);
        assert.deepEqual(decodeIpmiUsers(encodeIpmiUsers(c)), c);
      } catch (e) {
        assert.ok(isRecord(e), String(e));
      }
    }
  });

  it('names what is wrong: format, reserved bits, privilege, lengths, duplicates, non-UTF-8 passwords', () => {
    const good = encodeIpmiUsers({ enabled: true, users: [{ name: 'a', password: 'b', privilege: 'user', enabled: true }, { name: 'c', password: 'd', privilege: 'user', enabled: true }] });
    const variant = (at: number, v: number) => {
      const q = Uint8Array.from(good);
      q[at] = v;
      try {
        decodeIpmiUsers(q);
      } catch (e) {
        assert.ok(isRecord(e));
        return (e as IpmiUsersRecordError).detail;
      }
      return 'decoded';
    };
    assert.match(variant(0, 2), /format 2/);
    assert.match(variant(1, 3), /reserved flag bits/);
    assert.match(variant(2, 9), /at most 8/);
    assert.match(variant(3, 2), /user 1 .*reserved flag bits/);
    assert.match(variant(4, 5), /privilege 0x5/);
    assert.match(variant(5, 0), /name length 0/);
    assert.match(variant(6, 21), /password length 21/);
    assert.match(variant(8, 0xff), /not UTF-8/);
    assert.match(variant(7, 0x20), /printable ASCII/);
    assert.match(variant(13, 0x61), /appears twice/);
    assert.match(new IpmiUsersRecordError('x').message, /restore the EEPROM image/);
  });

  it('encode refuses bad input with E_USAGE, and the message never repeats a password', () => {
    const u = (o: Partial<IpmiUser>): IpmiUser => ({ name: 'n', password: 'hunter2-secret', privilege: 'user', enabled: true, ...o });
    const refuse = (c: unknown) => assert.throws(() => encodeIpmiUsers(c as IpmiUsersConfig), (e: unknown) => isUsage(e) && !/hunter2/.test((e as Error).message));
    refuse({ enabled: 'yes', users: [] });
    refuse({ enabled: true, users: Array.from({ length: 9 }, (_, i) => u({ name: `u${i}` })) });
    refuse({ enabled: true, users: [u({ name: '' })] });
    refuse({ enabled: true, users: [u({ name: 'x'.repeat(17) })] });
    refuse({ enabled: true, users: [u({ name: 'has space' })] });
    refuse({ enabled: true, users: [u({ name: 'a:b' })] });
    refuse({ enabled: true, users: [u({ name: 'naïve' })] });
    refuse({ enabled: true, users: [u({ password: '' })] });
    refuse({ enabled: true, users: [u({ password: 'hunter2-secret-is-21b' })] });
    refuse({ enabled: true, users: [u({ password: 'hunter2\0' })] });
    refuse({ enabled: true, users: [u({ privilege: 'root' as never })] });
    refuse({ enabled: true, users: [u({ enabled: 1 as never })] });
    refuse({ enabled: true, users: [u({}), u({})] });
  });
});

describe('--ipmi-user NAME:PASSWORD[:PRIV]', () => {
  it('defaults to administrator; PRIV is user, operator, administrator or admin in any case', () => {
    assert.deepEqual(parseIpmiUserSpec('admin:secret'), { name: 'admin', password: 'secret', privilege: 'administrator', enabled: true });
    assert.equal(parseIpmiUserSpec('ro:pw:user').privilege, 'user');
    assert.equal(parseIpmiUserSpec('op:pw:OPERATOR').privilege, 'operator');
    assert.equal(parseIpmiUserSpec('op:pw:Admin').privilege, 'administrator');
  });

  it('the password is everything between the first ":" and a trailing ":PRIV"', () => {
    assert.equal(parseIpmiUserSpec('a:pa:ss:word').password, 'pa:ss:word');
    assert.deepEqual([parseIpmiUserSpec('a:x:user:operator').password, parseIpmiUserSpec('a:x:user:operator').privilege], ['x:user', 'operator']);
    assert.equal(parseIpmiUserSpec('a:ends-with:').password, 'ends-with:');
  });

  it('refuses a missing ":", bad names and passwords with a usage error that says the syntax and hides the password', () => {
    for (const s of ['admin', ':pw', 'a b:pw', 'a:', 'a::user', 'a:' + 'p'.repeat(21), 'x'.repeat(17) + ':pw']) {
      assert.throws(() => parseIpmiUserSpec(s), (e: unknown) => isUsage(e) && /NAME:PASSWORD\[:PRIV\]/.test((e as Error).message), s);
    }
    assert.throws(() => parseIpmiUserSpec('a:' + 'supersecret'.repeat(2)), (e: unknown) => !/supersecret/.test((e as Error).message));
  });
});
