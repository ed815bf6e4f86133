/**
 * A/B of a poll round's lease renewal, interleaved in one run on a private PostgreSQL (docs/PERFORMANCE.md, "Station
 * cluster"): with N NICs owned by one station, A = first-come renewal (Store.acquireLeases over every owned NIC, what
 * every round of a `--sharing first-come` daemon does, as main's did) and B = the member row (Store.renewMember, what
 * a balanced daemon writes). 10 rounds, A then B.
 *
 *   node dist/bench/lease-renewal-ab.js [NICS=25000] [PG_PORT]    (starts and stops its own PostgreSQL; run it under
 *                                                                  the e2e lock on a shared machine)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startPostgres } from '../test/support/postgres-server.js';
import { openStore } from '../mgmt-station/store/open-store.js';
import { createClusterKeyFile } from '../mgmt-station/store/cluster-key.js';

const n = Number(process.argv[2] ?? 25000);
const port = process.argv[3] ? Number(process.argv[3]) : undefined;
const pg = await startPostgres({ port });
const dir = mkdtempSync(join(tmpdir(), 'lease-ab-'));
try {
  const s = await openStore(pg.url(), createClusterKeyFile(join(dir, 'cluster.key')), { maxConnections: 8 });
  const ids = Array.from({ length: n }, (_, i) => `nic-${i + 1}`);
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < ids.length) {
      const id = ids[next++];
      await s.addNicIfAbsent({ id, address: '127.0.0.1', securePort: 664, clearPort: 623, ikePort: 500, psk: new Uint8Array(32), enrolledAt: 1, meta: {} });
    }
  }));
  await s.acquireLeases(ids, 'st-a', Date.now(), 60_000);
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < 10; r++) {
    let t = performance.now();
    await s.acquireLeases(ids, 'st-a', Date.now(), 60_000);
    a.push(performance.now() - t);
    t = performance.now();
    await s.renewMember('st-a', Date.now(), 60_000);
    b.push(performance.now() - t);
  }
  const median = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1];
  const r2 = (v: number) => Math.round(v * 100) / 100;
  process.stdout.write(JSON.stringify({ nics: n, acquireLeasesMs: { median: r2(median(a)), rounds: a.map(r2) }, renewMemberMs: { median: r2(median(b)), rounds: b.map(r2) }, ratio: r2(median(a) / median(b)) }) + '\n');
  await s.close();
} finally {
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
}
