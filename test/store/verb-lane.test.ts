/**
 * Users' verbs on store connections of their own (issue 16 criterion 3, mgmt-station/store/sql-driver.ts asUserVerb):
 * a transaction started inside asUserVerb, after any number of awaits, runs on the 'verb' lane, which on PostgreSQL
 * is a pool apart from the one the daemon's background polls fill; one started outside does not.
 * The PostgreSQL case starts a private server (Debian's binaries) on 127.0.0.1:55435: run it under the e2e lock.
 */
import assert from 'node:assert/strict';
import { asUserVerb, currentLane, sql, type Tx } from '../../mgmt-station/store/sql-driver.js';
import { PostgresDriver } from '../../mgmt-station/store/postgres-store.js';
import { postgresUnavailable, startPostgres, type PostgresServer } from '../support/postgres-server.js';

describe('store: the verb lane (users ahead of background polls)', () => {
  it('asUserVerb marks everything its function awaits, and nothing started outside it', async () => {
    assert.equal(currentLane(), undefined);
    const outside: (string | undefined)[] = [];
    const background = (async () => {
      await new Promise((r) => setTimeout(r, 5));
      outside.push(currentLane());
    })();
    const inside = await asUserVerb(async () => {
      const seen: (string | undefined)[] = [currentLane()];
      await new Promise((r) => setTimeout(r, 10));
      seen.push(currentLane());
      seen.push(await Promise.resolve().then(() => currentLane()));
      return seen;
    });
    await background;
    assert.deepEqual(inside, ['verb', 'verb', 'verb']);
    assert.deepEqual(outside, [undefined]);
    assert.equal(currentLane(), undefined);
  });

  describe('PostgreSQL', function () {
    this.timeout(60_000);
    let server: PostgresServer | null = null;
    let driver: PostgresDriver | null = null;

    before(async function () {
      const why = postgresUnavailable();
      if (why) {
        this.skip();
        return;
      }
      server = await startPostgres({ port: 55435 });
    });
    after(async () => {
      await driver?.close();
      await server?.stop();
    });

    it('a verb is not queued behind a busy pool; a background transaction is', async () => {
      driver = new PostgresDriver(server!.url(), { maxConnections: 1, verbConnections: 1, idleInTransactionTimeoutMs: 5000 });
      const one = function* (): Tx<number> {
        const rows = yield sql('SELECT 1 AS x');
        return Number(rows[0].x);
      };
      await driver.transaction('read', one); // connected once
      const t0 = performance.now();
      // The pool's only connection busy for 1.5 s, as a takeover's session opens keep it.
      const busy = driver.transaction('read', function* (): Tx<void> {
        yield sql('SELECT pg_sleep(1.5)');
      });
      await new Promise((r) => setTimeout(r, 100));
      const verb = asUserVerb(() => driver!.transaction('read', one)).then(() => performance.now() - t0);
      const polled = driver.transaction('read', one).then(() => performance.now() - t0);
      const [verbMs, polledMs] = await Promise.all([verb, polled, busy]);
      assert.ok(verbMs < 1200, `the verb waited ${Math.round(verbMs)} ms`);
      assert.ok(polledMs >= 1400, `the background transaction ran after ${Math.round(polledMs)} ms, before the busy one ended`);
    });
  });
});
