/**
 * lib/fleet-run.ts: a fleet verb runs up to `concurrency` NICs at once (default DEFAULT_FLEET_CONCURRENCY), counts
 * failures by code, and its progress line says rate, ETA and failures (issue 16).
 */
import { strict as assert } from 'node:assert';
import { LifelineError } from '../../common/errors.js';
import { concurrencyOption, DEFAULT_FLEET_CONCURRENCY, progressText, runFleet } from '../../lib/fleet-run.js';

/** runFleet prints its JSON to stdout: swallowed here. */
async function quietly<T>(f: () => Promise<T>): Promise<T> {
  const write = process.stdout.write.bind(process.stdout);
  const code = process.exitCode;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    return await f();
  } finally {
    process.stdout.write = write;
    process.exitCode = code;
  }
}

describe('fleet runs (lib/fleet-run.ts)', () => {
  it('runs at most `concurrency` NICs at once, every NIC once, results in the order asked', async () => {
    for (const concurrency of [1, 5, 64]) {
      let active = 0;
      let peak = 0;
      const seen: string[] = [];
      const ids = Array.from({ length: 40 }, (_, i) => `nic-${i + 1}`);
      const s = await quietly(() => runFleet({
        prog: 't', verb: 'state', ids, json: true, concurrency,
        one: async (nic) => {
          seen.push(nic);
          peak = Math.max(peak, ++active);
          await new Promise((r) => setTimeout(r, 1 + (nic.length % 3)));
          active--;
          return { nic2: nic };
        },
      }));
      assert.equal(peak, Math.min(concurrency, ids.length));
      assert.deepEqual([...seen].sort(), [...ids].sort());
      assert.deepEqual(s.results.map((r) => r.nic), ids);
      assert.equal(s.concurrency, concurrency);
      assert.ok(s.perSecond > 0);
    }
  });

  it('defaults to DEFAULT_FLEET_CONCURRENCY and counts failures by code', async () => {
    let active = 0;
    let peak = 0;
    const ids = Array.from({ length: 100 }, (_, i) => `nic-${i + 1}`);
    const s = await quietly(() => runFleet({
      prog: 't', verb: 'refresh', ids, json: true,
      one: async (nic) => {
        peak = Math.max(peak, ++active);
        await new Promise((r) => setTimeout(r, 2));
        active--;
        if (nic.endsWith('7')) throw new LifelineError('E_IKE_TIMEOUT', 'no answer');
        if (nic === 'nic-50') throw new Error('a bug');
        return {};
      },
    }));
    assert.equal(peak, DEFAULT_FLEET_CONCURRENCY);
    assert.deepEqual(s.failedByCode, { E_IKE_TIMEOUT: 10, E_INTERNAL: 1 });
    assert.equal(s.done, 89);
    assert.equal(s.ok, false);
  });

  it('--concurrency: 1..1024, else E_USAGE', () => {
    assert.equal(concurrencyOption(undefined), DEFAULT_FLEET_CONCURRENCY);
    assert.equal(concurrencyOption('1'), 1);
    assert.equal(concurrencyOption('1024'), 1024);
    for (const bad of ['0', '1025', '-3', '2.5', 'many', '']) assert.throws(() => concurrencyOption(bad), (e: LifelineError) => e.code === 'E_USAGE');
  });

  it('the progress line: done/total, rate, ETA, failures by code', () => {
    assert.equal(progressText('enroll 100 NICs', 25, 100, 5, {}), `enroll 100 NICs [${'#'.repeat(8)}${'.'.repeat(22)}] 25/100 5/s ETA 15 s`);
    assert.equal(progressText('enroll 100 NICs', 0, 100, 0, {}), `enroll 100 NICs [${'.'.repeat(30)}] 0/100 0/s ETA -`);
    assert.match(progressText('refresh 10 NICs', 10, 10, 2, { E_TIMEOUT: 2, E_FENCED: 1 }), /10\/10 5\/s ETA 0 s, 3 failed \(E_FENCED 1, E_TIMEOUT 2\)$/);
  });
});
