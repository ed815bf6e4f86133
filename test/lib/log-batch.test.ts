/**
 * lib/log.ts `batchMs`: info lines written together at most every batchMs (one write to stderr's pipe for many lines,
 * the daemon's fleet verbs); a warning writes what is held and itself at once, in order; flush() writes what is held.
 */
import assert from 'node:assert/strict';
import { createLogger } from '../../lib/log.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lib/log: batched lines (batchMs)', () => {
  it('info lines are held and written in one write within batchMs, in order', async () => {
    const writes: string[] = [];
    const log = createLogger({ format: 'json', component: 't', out: (s) => writes.push(s), batchMs: 30 });
    log.log('info', 'a', { nic: 'n1' });
    log.log('info', 'b', { nic: 'n2' });
    assert.equal(writes.length, 0);
    await sleep(80);
    assert.equal(writes.length, 1);
    assert.deepEqual(writes[0].split('\n').map((l) => JSON.parse(l).msg), ['a', 'b']);
  });

  it('a warning writes the held lines and itself at once; flush() writes what is held; debug below the level is dropped', () => {
    const writes: string[] = [];
    const log = createLogger({ format: 'text', component: 't', out: (s) => writes.push(s), batchMs: 10000 });
    log.log('info', 'first');
    log.log('debug', 'not written');
    log.log('warn', 'second');
    assert.equal(writes.length, 1);
    assert.deepEqual(writes[0].split('\n').map((l) => / (INFO|WARN) +t: (\w+)/.exec(l)?.slice(1)), [['INFO', 'first'], ['WARN', 'second']]);
    log.log('info', 'third');
    log.flush();
    assert.equal(writes.length, 2);
    assert.match(writes[1], /INFO +t: third$/);
    log.flush();
    assert.equal(writes.length, 2, 'nothing held: nothing written');
  });

  it('without batchMs every line is written at once', () => {
    const writes: string[] = [];
    const log = createLogger({ format: 'json', component: 't', out: (s) => writes.push(s) });
    log.log('info', 'a');
    log.log('info', 'b');
    assert.equal(writes.length, 2);
  });
});
