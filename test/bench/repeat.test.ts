/**
 * bench/repeat.ts: several bench runs folded into one summary per target (how often it passed, over what
 * range its figure moved). The fold on hand-made target lists, then a real two-run repeat of a quick,
 * in-process section.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { summarize, type RepeatSummary } from '../../bench/repeat.js';
import { check } from '../../bench/report.js';

const REPEAT = resolve(import.meta.dirname, '../../bench/repeat.js');

describe('bench repeat', () => {
  it('counts passes and failures per target and gives min / median / max of the measured values', () => {
    const ratio = (v: number | null) => check('secure-over-clear-p50', 'secure / clear', v, '<=', 1.5, 'ratio');
    const s = summarize([[ratio(1.35)], [ratio(1.59)], null, [ratio(null)], [ratio(1.41)]]);
    assert.equal(s.length, 1);
    assert.deepEqual(s[0].values, [1.35, 1.59, null, null, 1.41]);
    assert.deepEqual([s[0].passed, s[0].failed, s[0].notMeasured], [2, 1, 2]);
    assert.deepEqual([s[0].min, s[0].median, s[0].max], [1.35, 1.41, 1.59]);
    assert.equal(s[0].target, '<= 1.5');
  });

  it('a target no run measured has no range', () => {
    const s = summarize([null, null]);
    assert.deepEqual(s, []);
    const t = summarize([[check('x', 'x', null, '>=', 1, 'ratio')]]);
    assert.deepEqual([t[0].min, t[0].median, t[0].max, t[0].notMeasured], [null, null, null, 1]);
  });

  it('runs the bench twice and prints one JSON summary (quick EEPROM section)', function () {
    this.timeout(60000);
    const r = spawnSync(process.execPath, [REPEAT, '2', '--quick', '--only', 'eeprom'], { encoding: 'utf8', timeout: 55000 });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as RepeatSummary;
    assert.equal(j.runs, 2);
    assert.deepEqual(j.failedRuns, []);
    const wear = j.targets.find((t) => t.id === 'eeprom-refresh')!;
    assert.deepEqual([wear.passed, wear.failed, wear.values], [2, 0, [4, 4]]);
    assert.match(r.stderr, /^\[run 2\] \[bench /m);
  });

  it('refuses a bad run count with usage and exit code 2, and counts a failing run', () => {
    for (const n of ['0', '21', 'x']) {
      const r = spawnSync(process.execPath, [REPEAT, n], { encoding: 'utf8', timeout: 10000 });
      assert.equal(r.status, 2, n);
      assert.match(r.stderr, /number of runs, 1\.\.20/);
    }
    const bad = spawnSync(process.execPath, [REPEAT, '1', '--only', 'nonsense'], { encoding: 'utf8', timeout: 10000 });
    assert.equal(bad.status, 1);
    const j = JSON.parse(bad.stdout) as RepeatSummary;
    assert.deepEqual(j.failedRuns, [{ run: 1, error: 'bench exited with 2' }]);
  });
});
