/**
 * lib/literal-lookup.ts: an IPv4 literal is answered inside the call (dgram's send() then sends in the callback,
 * before it returns); anything else still goes through dns.lookup.
 */
import assert from 'node:assert/strict';
import { literalLookup } from '../../lib/literal-lookup.js';

describe('lib/literal-lookup.ts', () => {
  it('answers IPv4 literals synchronously, the same one twice in a row too', () => {
    for (const a of ['127.0.0.1', '127.0.0.1', '127.3.2.1']) {
      let got: [string, number] | null = null;
      literalLookup(a, { family: 4 }, (err, address, family) => {
        assert.equal(err, null);
        got = [address, family];
      });
      assert.deepEqual(got, [a, 4], 'called back before literalLookup returned');
    }
  });

  it('hands a host name to dns.lookup (answered later)', async () => {
    let sync = true;
    const r = await new Promise<[NodeJS.ErrnoException | null, string]>((resolve) => {
      literalLookup('localhost', { family: 4 }, (err, address) => resolve([err, address]));
      sync = false;
    });
    assert.equal(sync, false);
    assert.equal(r[0], null);
    assert.match(r[1], /^127\./);
  });
});
