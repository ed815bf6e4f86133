/**
 * SQLite-specific promises of the store (DESIGN §5): no key in clear anywhere in the database file or
 * its WAL, a private file mode, WAL journaling, and several processes sharing one file.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { SaPair } from '../../wire/sa.js';
import { ClusterKey } from '../../mgmt-station/store/cluster-key.js';
import { openStore } from '../../mgmt-station/store/open-store.js';
import type { IkeSaSnapshot, Store } from '../../mgmt-station/store/store.js';

const T0 = 1_700_000_000_000;
const key = (): ClusterKey => ClusterKey.fromBytes(new Uint8Array(randomBytes(32)), 'test');
const rnd = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

describe('SQLite store', function () {
  this.timeout(20000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lifeline-sqlite-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the raw database file and its WAL contain no key byte sequence, raw or hex (DESIGN §5)', async () => {
    const file = join(dir, 'station.db');
    const store = await openStore('sqlite:' + file, key());
    const psk = rnd(32);
    const dirn = () => ({ spi: 0x1000 + rnd(1)[0], encKey: rnd(36), ahSpi: 0x2000 + rnd(1)[0], ahKey: rnd(32) });
    const pair: SaPair = { generation: 1, transform: 'aes-gcm-16', esn: false, policy: 'esp+ah', toNic: dirn(), fromNic: dirn(), origin: 'ike' };
    const ike: IkeSaSnapshot = {
      spiI: rnd(8), spiR: rnd(8), initiator: true, skD: rnd(32), skAi: rnd(32), skAr: rnd(32), skEi: rnd(36), skEr: rnd(36),
      skPi: rnd(32), skPr: rnd(32), nextRequestId: 2, nextPeerRequestId: 0, transforms: { encr: 20, encrKeyBits: 256, prf: 5, integ: 0, dh: 31 },
    };
    await store.addNicIfAbsent({ id: 'nic-1', address: 'marker-host.example', securePort: 664, clearPort: 623, ikePort: 500, psk, enrolledAt: T0, meta: {} });
    const lease = await store.acquireLease('nic-1', 'st-a', T0, 1000);
    assert.ok(lease.acquired);
    await store.putSa('nic-1', { pair, state: 'active', ike }, T0, { station: 'st-a', epoch: lease.lease.epoch });

    const secrets = [psk, pair.toNic.encKey, pair.toNic.ahKey, pair.fromNic.encKey, pair.fromNic.ahKey,
      ike.skD, ike.skAi, ike.skAr, ike.skEi, ike.skEr, ike.skPi, ike.skPr];
    const files = (): Buffer[] => [file, file + '-wal', file + '-shm'].filter(existsSync).map((f) => readFileSync(f));
    const assertNoSecret = (bufs: Buffer[]): void => {
      // Positive control: the search does see what was written (a non-secret marker), so a miss means something.
      assert.ok(bufs.some((b) => b.includes('marker-host.example')), 'marker not found: the search is not looking at the data');
      for (const s of secrets) {
        for (let o = 0; o + 8 <= s.length; o++) {
          const win = Buffer.from(s.subarray(o, o + 8));
          for (const needle of [win, Buffer.from(win.toString('hex')), Buffer.from(win.toString('hex').toUpperCase())]) {
            for (const b of bufs) assert.equal(b.indexOf(needle), -1, 'key bytes found in the store file');
          }
        }
      }
    };
    assert.ok(existsSync(file + '-wal'), 'WAL file exists while the store is open');
    assertNoSecret(files());
    await store.close(); // checkpoints the WAL into the main file
    assertNoSecret(files());
  });

  it('creates the database file with mode 0600 and journals in WAL mode', async () => {
    const file = join(dir, 'new.db');
    const store = await openStore('sqlite:' + file, key());
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const raw = new Database(file, { readonly: true });
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    raw.close();
    await store.close();
  });

  it('two processes on one file: both logs stay intact and a lease race has one winner', async () => {
    const file = join(dir, 'shared.db');
    const bytes = rnd(32);
    const cluster = ClusterKey.fromBytes(bytes, 'test');
    const store: Store = await openStore('sqlite:' + file, cluster);
    for (const id of ['nic-1', 'nic-2', 'nic-3']) {
      await store.addNicIfAbsent({ id, address: '127.0.0.1', securePort: 664, clearPort: 623, ikePort: 500, psk: rnd(16), enrolledAt: T0, meta: {} });
    }
    const mod = (name: string) => new URL(`../../mgmt-station/store/${name}`, import.meta.url).href;
    const child = `
      const { openStore } = await import(${JSON.stringify(mod('open-store.js'))});
      const { clusterKeyFromEnv } = await import(${JSON.stringify(mod('cluster-key.js'))});
      const s = await openStore(${JSON.stringify('sqlite:' + file)}, clusterKeyFromEnv());
      const race = await s.acquireLease('nic-3', 'st-child', ${T0}, 1000);
      const l = await s.acquireLease('nic-2', 'st-child', ${T0}, 1000);
      for (let i = 0; i < 40; i++) {
        await s.appendCommand('nic-2', { time: ${T0} + i, command: 'reset', rmcpSeq: i, asfTag: i, outcome: 'sent' }, { station: 'st-child', epoch: l.lease.epoch });
      }
      await s.close();
      console.log(JSON.stringify({ raced: race.acquired }));
    `;
    const done = new Promise<{ raced: boolean }>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', child], { timeout: 15000, env: { ...process.env, LIFELINE_CLUSTER_KEY: Buffer.from(bytes).toString('hex') } },
        (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(JSON.parse(stdout))));
    });
    const race = await store.acquireLease('nic-3', 'st-parent', T0, 1000);
    const l = await store.acquireLease('nic-1', 'st-parent', T0, 1000);
    for (let i = 0; i < 40; i++) {
      await store.appendCommand('nic-1', { time: T0 + i, command: 'reset', rmcpSeq: i, asfTag: i, outcome: 'sent' }, { station: 'st-parent', epoch: l.lease.epoch });
      await new Promise((r) => setImmediate(r));
    }
    const fromChild = await done;
    assert.equal(Number(race.acquired) + Number(fromChild.raced), 1, 'exactly one process wins nic-3');
    for (const id of ['nic-1', 'nic-2']) {
      const audit = await store.auditCommandLog(id);
      assert.deepEqual([audit.ok, audit.entries], [true, 40], id);
    }
    await store.close();
  });
});
