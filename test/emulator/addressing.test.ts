/** NIC ids and addresses of one emulator (nic-emulator/addressing.ts): --id-prefix, and addresses outside 127/8. */
import assert from 'node:assert/strict';
import { assignAddresses, missingAddresses, nicId, parseIdPrefix } from '../../nic-emulator/addressing.js';
import { resolveTargets } from '../../lib/nic-targets.js';
import { isLifelineError } from '../../common/errors.js';

function usage(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => isLifelineError(e) && e.code === 'E_USAGE' && re.test(e.message));
}

describe('emulator addressing: NIC ids and addresses', () => {
  it('ids are nic-N by default and PREFIX-nic-N with --id-prefix', () => {
    assert.equal(nicId(3), 'nic-3');
    assert.equal(nicId(3, 'lab-a'), 'lab-a-nic-3');
    const a = assignAddresses({ nics: 2, firstAddress: '127.0.1.1', portBase: null, idPrefix: 'lab-a' });
    assert.deepEqual(a.map((x) => x.id), ['lab-a-nic-1', 'lab-a-nic-2']);
    const p = assignAddresses({ nics: 2, firstAddress: '127.0.0.1', portBase: 16000 });
    assert.deepEqual(p.map((x) => x.id), ['nic-1', 'nic-2']);
  });

  it('--id-prefix: letters, digits, . _ -, starting and ending with a letter or digit, at most 32', () => {
    for (const ok of ['lab-a', 'A', 'host7.rack_2', 'x'.repeat(32)]) assert.equal(parseIdPrefix(ok), ok);
    for (const bad of ['', '-a', 'a-', 'lab a', 'lab,a', 'lab*', 'x'.repeat(33), 'a/b']) usage(() => parseIdPrefix(bad), /--id-prefix/);
  });

  it('TARGET patterns and lists name one emulator\'s NICs by prefix', () => {
    const known = [
      ...assignAddresses({ nics: 3, firstAddress: '10.77.1.1', portBase: null, idPrefix: 'lab-a' }),
      ...assignAddresses({ nics: 3, firstAddress: '10.77.2.1', portBase: null, idPrefix: 'lab-b' }),
    ].map((n) => ({ id: n.id, address: n.address, ports: [n.clearPort, n.securePort, n.ikePort] }));
    assert.deepEqual(resolveTargets('lab-b-*', known), ['lab-b-nic-1', 'lab-b-nic-2', 'lab-b-nic-3']);
    assert.deepEqual(resolveTargets('lab-a-nic-2,10.77.2.3', known), ['lab-a-nic-2', 'lab-b-nic-3']);
    assert.deepEqual(resolveTargets('*-nic-1', known), ['lab-a-nic-1', 'lab-b-nic-1']);
  });

  it('address-per-NIC takes any unicast first address (a lab host\'s own) and stays within its /8', () => {
    const a = assignAddresses({ nics: 3, firstAddress: '10.77.1.254', portBase: null });
    assert.deepEqual(a.map((x) => x.address), ['10.77.1.254', '10.77.2.1', '10.77.2.2']);
    assert.deepEqual([a[0].clearPort, a[0].securePort, a[0].ikePort], [623, 664, 500]);
    usage(() => assignAddresses({ nics: 2, firstAddress: '10.255.255.254', portBase: null }), /do not fit in 10\.0\.0\.0\/8/);
    usage(() => assignAddresses({ nics: 1, firstAddress: '224.0.0.1', portBase: null }), /unicast/);
    usage(() => assignAddresses({ nics: 1, firstAddress: '0.0.0.1', portBase: null }), /unicast/);
  });

  it('names the NIC addresses outside 127/8 that no interface has (start refuses them up front)', () => {
    const a = assignAddresses({ nics: 3, firstAddress: '10.77.1.1', portBase: null });
    assert.deepEqual(missingAddresses(a, new Set(['10.77.1.1', '10.77.1.3'])), ['10.77.1.2']);
    assert.deepEqual(missingAddresses(assignAddresses({ nics: 2, firstAddress: '127.0.1.1', portBase: null }), new Set()), []);
  });
});
