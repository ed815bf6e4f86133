/** Key wrapping for the store: AES-256-GCM (SP 800-38D) under a cluster sub-key, row identity in the AAD. */
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, hkdfSync } from 'node:crypto';
import { ClusterKey } from '../../mgmt-station/store/cluster-key.js';
import { KeyWrapper, WRAP_OVERHEAD, type WrapContext } from '../../mgmt-station/store/key-wrap.js';

const HEX = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const CTX: WrapContext = { nic: 'nic-1', generation: 2, column: 'to_nic_enc_key' };
const PLAIN = new Uint8Array(Buffer.from('00112233445566778899aabbccddeeff0102030405060708090a0b0c0d0e0f1011121314', 'hex'));
const fixedNonce = (n: number) => new Uint8Array(n).fill(0xa5);

function code(fn: () => unknown, c: string, re?: RegExp): void {
  assert.throws(fn, (e: Error & { code?: string }) => {
    assert.equal(e.code, c, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

describe('key wrap', () => {
  const key = ClusterKey.fromHex(HEX, 'test');
  const w = new KeyWrapper(key);

  it('round-trips, with a fresh nonce each time and 33 bytes of overhead', () => {
    const a = w.wrap(PLAIN, CTX);
    const b = w.wrap(PLAIN, CTX);
    assert.equal(a.length, PLAIN.length + WRAP_OVERHEAD);
    assert.notDeepEqual(a, b);
    assert.deepEqual(w.unwrap(a, CTX), PLAIN);
    assert.deepEqual(w.unwrap(w.wrap(new Uint8Array(0), CTX), CTX), new Uint8Array(0));
  });

  it('blob layout: 01 | key id | nonce | AES-256-GCM(HKDF sub-key) ciphertext | tag, AAD = header | row identity', () => {
    // Recomputed here from the documented layout, so the on-disk format cannot drift unnoticed.
    const sub = Buffer.from(hkdfSync('sha256', Buffer.from(HEX, 'hex'), Buffer.alloc(0), 'lifeline store key wrap v1', 32));
    const id = createHmac('sha256', Buffer.from(HEX, 'hex')).update('lifeline cluster key id').digest().subarray(0, 4);
    const header = Buffer.concat([Buffer.from([1]), id]);
    const nonce = Buffer.alloc(12, 0xa5);
    const c = createCipheriv('aes-256-gcm', sub, nonce);
    c.setAAD(Buffer.concat([header, Buffer.from(JSON.stringify(['lifeline-wrap-v1', 'nic-1', 2, 'to_nic_enc_key']))]));
    const expected = Buffer.concat([header, nonce, c.update(PLAIN), c.final(), c.getAuthTag()]);
    assert.deepEqual(Buffer.from(new KeyWrapper(key, fixedNonce).wrap(PLAIN, CTX)), expected);
    assert.equal(key.id, id.toString('hex'));
  });

  it('another cluster key is told apart from tampering: E_KEYFILE naming both key ids', () => {
    const other = ClusterKey.fromHex('ff'.repeat(32), 'env LIFELINE_CLUSTER_KEY');
    const blob = w.wrap(PLAIN, CTX);
    code(() => new KeyWrapper(other).unwrap(blob, CTX), 'E_KEYFILE', new RegExp(`${key.id}.*${other.id}.*env LIFELINE_CLUSTER_KEY`));
  });

  it('any changed byte fails: E_STORE (E_KEYFILE if the key id bytes changed)', () => {
    const blob = w.wrap(PLAIN, CTX);
    for (let i = 0; i < blob.length; i++) {
      const t = Uint8Array.from(blob);
      t[i] ^= 0x01;
      code(() => w.unwrap(t, CTX), i >= 1 && i <= 4 ? 'E_KEYFILE' : 'E_STORE');
    }
    code(() => w.unwrap(blob.subarray(0, WRAP_OVERHEAD - 1), CTX), 'E_STORE', /not a wrapped key/);
    code(() => w.unwrap(blob.subarray(0, blob.length - 1), CTX), 'E_STORE', /authentication/);
  });

  it('a blob moved to another row does not unwrap (nic, generation and column are bound)', () => {
    const blob = w.wrap(PLAIN, CTX);
    for (const ctx of [{ ...CTX, nic: 'nic-2' }, { ...CTX, generation: 3 }, { ...CTX, column: 'from_nic_enc_key' }]) {
      code(() => w.unwrap(blob, ctx), 'E_STORE', /moved/);
    }
  });
});
