/**
 * What lanplus gives away (DESIGN §9, the first half of the side-by-side): CVE-2013-4786. From one RAKP 1 +
 * RAKP 2 pair an offline dictionary loop recovers a weak password, whether the pair was captured from a
 * legitimate session or asked for by someone who knows only a user name. The BMC cannot prevent it (the leak
 * is the protocol's); it can only refuse to hand out codes for names that do not exist (status 0Dh, no HMAC)
 * and let strong passwords make the loop hopeless.
 */
import assert from 'node:assert/strict';
import { Rig, CONSOLE } from '../support/ipmi-rig.js';
import { IpmiTestConsole } from '../support/ipmi-test-console.js';
import { recoverRakpPassword, rakpHashInput } from '../../scripts/rakp-dictionary.js';

const WEAK = 'dragon';
const DICTIONARY = ['123456', 'password', 'admin', 'calvin', 'changeme', 'letmein', 'qwerty', WEAK, 'monkey', 'shadow'];
const USERS = [
  { name: 'admin', password: WEAK, privilege: 'administrator' as const, enabled: true },
  { name: 'strong', password: 'c7#Vq-9mL!2zR@4x', privilege: 'administrator' as const, enabled: true },
];

describe('CVE-2013-4786: RAKP 2 is an offline password oracle (what lanplus gives away)', () => {
  for (const suite of [3, 17] as const) {
    it(`suite ${suite}: a captured RAKP 1 + RAKP 2 of a legitimate session gives the weak password to a dictionary loop`, () => {
      const rig = new Rig({ users: USERS });
      const c = rig.console({ suite, user: 'admin', password: WEAK });
      c.onOpenSession(rig.one(CONSOLE, c.openSession())!);
      const rakp1 = c.rakp1(); // on the wire: the eavesdropper keeps a copy
      const rakp2 = rig.one(CONSOLE, rakp1)!;
      assert.equal(c.onRakp2(rakp2).hmacOk, true);
      const found = recoverRakpPassword({ rakp1, rakp2 }, DICTIONARY);
      assert.deepEqual(found, { password: WEAK, tried: DICTIONARY.indexOf(WEAK) + 1 });
      assert.equal(rakpHashInput({ rakp1, rakp2 }).hash, suite === 3 ? 'sha1' : 'sha256');
    });
  }

  it('no capture needed: knowing only the user name, an attacker asks for RAKP 2 itself and never sends RAKP 3', () => {
    const rig = new Rig({ users: USERS });
    const attacker = new IpmiTestConsole({ suite: 17, user: 'admin', password: 'unknown-to-me', random: (n) => rig.rnd.bytes(n) });
    const from = { address: '127.0.77.99', port: 50000 };
    attacker.onOpenSession(rig.one(from, attacker.openSession())!);
    const rakp1 = attacker.rakp1();
    const rakp2 = rig.one(from, rakp1)!;
    assert.equal(recoverRakpPassword({ rakp1, rakp2 }, DICTIONARY)?.password, WEAK);
    assert.equal(rig.lan.counters.sessions.activated, 0, 'no session, nothing refused, nothing the BMC can count as an attack');
  });

  it('a name that does not exist yields no code (status 0Dh), and a strong password survives the dictionary', () => {
    const rig = new Rig({ users: USERS });
    const probe = rig.console({ user: 'root', password: 'x' });
    probe.onOpenSession(rig.one(CONSOLE, probe.openSession())!);
    const rakp1 = probe.rakp1();
    const rakp2 = rig.one(CONSOLE, rakp1)!;
    assert.throws(() => rakpHashInput({ rakp1, rakp2 }), /status 0xd/);
    const s = rig.console({ user: 'strong', password: 'c7#Vq-9mL!2zR@4x' });
    s.onOpenSession(rig.one(CONSOLE, s.openSession())!);
    const r1 = s.rakp1();
    assert.equal(recoverRakpPassword({ rakp1: r1, rakp2: rig.one(CONSOLE, r1)! }, DICTIONARY), null);
  });
});
