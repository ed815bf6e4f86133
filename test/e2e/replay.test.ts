/**
 * `mgmt-station replay`: the seed's Fig. 6 table passes on a real lab; a deliberately wrong row fails with a
 * readable expected/observed line; a malformed table gets a line-numbered error (issue 3 criterion 5).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, STATION } from '../support/lab.js';
import { parseTable } from '../../mgmt-station/replay/table.js';

function replay(table: string, timeout = 120000) {
  return spawnSync(process.execPath, [STATION, 'replay', table], { cwd: ROOT, encoding: 'utf8', timeout });
}

describe('replay of state-transition tables (mgmt-station replay)', function () {
  this.timeout(150000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'lifeline-table-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('passes every row of fixtures/fig6.table on a real lab', () => {
    const r = replay(join(ROOT, 'fixtures/fig6.table'));
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /22\/22 rows as expected/);
  });

  it('reports a deliberately wrong row with expected vs observed and exits 1', () => {
    const f = join(dir, 'wrong.table');
    writeFileSync(f, '| id | client | station | action | expect |\n| a | suspend | up | secure-state | S3 |\n| b | suspend | up | secure-state | S0 |\n');
    const r = replay(f);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /^b\s+suspend\s+up\s+secure-state\s+S0\s+S3\s+MISMATCH/m);
    assert.match(r.stdout, /1\/2 rows as expected; mismatches: b \(line 3: expected S0, observed S3\)/);
  });

  it('rejects a malformed table with the file and line number (exit 2)', () => {
    const f = join(dir, 'bad.table');
    writeFileSync(f, '# comment\n| id | client | station | action | expect |\n| 1 | up | up | secure-state | S0 |\n| 2 | sideways | up | secure-state | S0 |\n');
    const r = replay(f, 10000);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /E_TABLE: .*bad\.table:4: client 'sideways' is not one of up, hung/);
  });

  it('parses the table format strictly (unit)', () => {
    assert.throws(() => parseTable('| id | client |\n', 't'), /t:1: header must name the columns/);
    assert.throws(() => parseTable('| id | client | station | action | expect |\n| 1 | up | up | refresh |\n', 't'), /t:2: row has 4 cells/);
    assert.throws(() => parseTable('| id | client | station | action | expect |\n| 1 | up | up | refresh | ok |\n| 1 | up | up | refresh | ok |\n', 't'), /t:3: id '1' appears twice/);
    const rows = parseTable('| id | client | station | action | expect | note |\n|--|--|--|--|--|--|\n| 9 | no-sa | up | clear-power-up | ok | clear-management=power-up |\n', 't');
    assert.deepEqual(rows[0].clearManagement, ['power-up']);
    assert.equal(rows[0].line, 3);
  });
});
