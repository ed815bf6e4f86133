/** openStore(url, clusterKey): the store URL forms a user types (DESIGN §5). */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterKey } from '../../mgmt-station/store/cluster-key.js';
import { openStore } from '../../mgmt-station/store/open-store.js';

const KEY = ClusterKey.fromHex('42'.repeat(32), 'test');

async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error & { code?: string }) => {
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  });
}

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe('openStore', () => {
  it('sqlite::memory: opens a private in-memory store', async () => {
    const s = await openStore('sqlite::memory:', KEY);
    assert.equal(s.kind, 'sqlite');
    assert.equal(s.url, 'sqlite::memory:');
    assert.deepEqual(await s.listNics(), []);
    await s.close();
  });

  it('an unknown URL is E_USAGE with the forms that work', async () => {
    await rejectsWith(openStore('mysql://x', KEY), 'E_USAGE', /sqlite:FILE.*postgres:\/\//);
    await rejectsWith(openStore('sqlite:', KEY), 'E_USAGE', /sqlite:FILE/);
    await rejectsWith(openStore('postgres://u@127.0.0.1/db?schema=Bad-Name', KEY), 'E_USAGE', /schema/);
  });

  it('an unreachable PostgreSQL is E_STORE naming the store, with the password hidden', async () => {
    const port = await closedPort();
    await rejectsWith(openStore(`postgres://u:secret@127.0.0.1:${port}/db`, KEY, { connectTimeoutMs: 2000 }), 'E_STORE',
      new RegExp(`^store postgres://u:\\*\\*\\*@127\\.0\\.0\\.1:${port}/db: `));
  });

  it('a 0-byte store file is E_STORE (truncated: not a new, empty store), and it is left as it is', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeline-empty-store-'));
    try {
      const file = join(dir, 'station.db');
      writeFileSync(file, '');
      await rejectsWith(openStore(`sqlite:${file}`, KEY), 'E_STORE', /0 bytes \(truncated\?\).*restore it from a backup, or delete it/);
      assert.equal(statSync(file).size, 0, 'nothing written into it');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a directory that does not exist is E_STORE naming the file', async () => {
    await rejectsWith(openStore('sqlite:/nonexistent-dir/station.db', KEY), 'E_STORE', /sqlite:\/nonexistent-dir\/station\.db/);
  });
});
