/** The cluster key (DESIGN §5): a 0600 key file or LIFELINE_CLUSTER_KEY, never printed. */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import {
  ClusterKey, clusterKeyFromEnv, createClusterKeyFile, loadClusterKey, loadClusterKeyFile,
} from '../../mgmt-station/store/cluster-key.js';

const HEX = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';

function code(fn: () => unknown, c: string, re?: RegExp): void {
  assert.throws(fn, (e: Error & { code?: string }) => {
    assert.equal(e.code, c, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

describe('cluster key', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lifeline-key-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('createClusterKeyFile writes 64 hex digits with mode 0600 and loads back as the same key', () => {
    const f = join(dir, 'cluster.key');
    const made = createClusterKeyFile(f, (n) => new Uint8Array(Buffer.from(HEX, 'hex').subarray(0, n)));
    assert.equal(statSync(f).mode & 0o777, 0o600);
    assert.equal(readFileSync(f, 'utf8'), HEX + '\n');
    const loaded = loadClusterKeyFile(f);
    assert.equal(loaded.id, made.id);
    assert.equal(loaded.source, 'file ' + f);
  });

  it('createClusterKeyFile never overwrites an existing key file', () => {
    const f = join(dir, 'cluster.key');
    createClusterKeyFile(f);
    const before = readFileSync(f, 'utf8');
    code(() => createClusterKeyFile(f), 'E_KEYFILE', /already exists/);
    assert.equal(readFileSync(f, 'utf8'), before);
  });

  for (const mode of [0o640, 0o604, 0o660, 0o644, 0o602]) {
    it(`refuses a key file with mode 0${mode.toString(8)} and says "chmod 600 FILE"`, () => {
      const f = join(dir, 'cluster.key');
      writeFileSync(f, HEX + '\n');
      chmodSync(f, mode);
      code(() => loadClusterKeyFile(f), 'E_KEYFILE', new RegExp(`chmod 600 ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      chmodSync(f, 0o600);
      assert.doesNotThrow(() => loadClusterKeyFile(f));
    });
  }

  it('accepts 32 raw bytes too; refuses a file of any other shape', () => {
    const raw = join(dir, 'raw.key');
    writeFileSync(raw, Buffer.from(HEX, 'hex'), { mode: 0o600 });
    assert.equal(loadClusterKeyFile(raw).id, ClusterKey.fromHex(HEX).id);
    const bad = join(dir, 'bad.key');
    writeFileSync(bad, 'not a key\n', { mode: 0o600 });
    code(() => loadClusterKeyFile(bad), 'E_KEYFILE', /64 hex digits/);
    code(() => loadClusterKeyFile(join(dir, 'missing.key')), 'E_KEYFILE', /cannot read/);
  });

  it('LIFELINE_CLUSTER_KEY (hex) gives the same key as the file; a named file takes precedence', () => {
    const f = join(dir, 'cluster.key');
    writeFileSync(f, HEX, { mode: 0o600 });
    const env = { LIFELINE_CLUSTER_KEY: HEX.toUpperCase() };
    assert.equal(clusterKeyFromEnv(env)?.id, loadClusterKeyFile(f).id);
    assert.equal(clusterKeyFromEnv({}), null);
    assert.equal(loadClusterKey({ env }).source, 'env LIFELINE_CLUSTER_KEY');
    assert.equal(loadClusterKey({ file: f, env: { LIFELINE_CLUSTER_KEY: 'ff'.repeat(32) } }).source, 'file ' + f);
    code(() => loadClusterKey({ env: {} }), 'E_KEYFILE', /LIFELINE_CLUSTER_KEY/);
    code(() => clusterKeyFromEnv({ LIFELINE_CLUSTER_KEY: 'abc' }), 'E_KEYFILE', /64 hex digits/);
    code(() => ClusterKey.fromBytes(new Uint8Array(16)), 'E_KEYFILE', /32 bytes/);
  });

  it('never shows its bytes in JSON, inspect or string form', () => {
    const k = ClusterKey.fromHex(HEX, 'test');
    for (const s of [JSON.stringify(k), inspect(k, { showHidden: true, depth: 5 }), String(k), JSON.stringify({ ...k })]) {
      assert.ok(!s.includes(HEX) && !s.includes('0,1,2,3'), s);
    }
    assert.match(inspect(k), /ClusterKey \{ id: '[0-9a-f]{8}'/);
  });

  it('derives distinct sub-keys per purpose (HKDF-SHA-256, RFC 5869)', () => {
    const k = ClusterKey.fromHex(HEX);
    assert.notDeepEqual(k.subkey('a'), k.subkey('b'));
    assert.deepEqual(k.subkey('a'), ClusterKey.fromHex(HEX).subkey('a'));
    assert.equal(k.subkey('a').length, 32);
  });
});
