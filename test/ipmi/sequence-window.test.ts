/**
 * Inbound session sequence numbers (IPMI v2.0 §6.12.13; cat. §5.3): the first authenticated number is the
 * baseline, then up to 15 ahead and 16 behind the highest, each once; 0 never.
 */
import assert from 'node:assert/strict';
import { SequenceWindow, SEQ_AHEAD, SEQ_BEHIND } from '../../firmware/ipmi/sequence-window.js';

function take(w: SequenceWindow, seq: number): string {
  const v = w.check(seq);
  if (v === 'ok') w.mark(seq);
  return v;
}

describe('IPMI session sequence window (IPMI v2.0 §6.12.13)', () => {
  it('0 is never valid; the first number (ipmitool starts at 3 or more) becomes the baseline', () => {
    const w = new SequenceWindow();
    assert.equal(w.check(0), 'out-of-window');
    assert.equal(take(w, 7), 'ok');
    assert.equal(w.highestSeen, 7);
    assert.equal(take(w, 0), 'out-of-window');
  });

  it('check() does not mark: a forged packet that fails its AuthCode cannot move the window', () => {
    const w = new SequenceWindow();
    take(w, 1);
    assert.equal(w.check(2), 'ok');
    assert.equal(w.check(2), 'ok');
    assert.equal(w.highestSeen, 1);
  });

  it(`accepts up to ${SEQ_AHEAD} ahead, refuses ${SEQ_AHEAD + 1} ahead as out of window`, () => {
    const w = new SequenceWindow();
    take(w, 100);
    assert.equal(w.check(100 + SEQ_AHEAD), 'ok');
    assert.equal(w.check(100 + SEQ_AHEAD + 1), 'out-of-window');
  });

  it(`accepts late packets up to ${SEQ_BEHIND} behind, once each; older ones are out of window`, () => {
    const w = new SequenceWindow();
    take(w, 100);
    for (let s = 101; s <= 110; s++) take(w, s);
    assert.equal(take(w, 110 - SEQ_BEHIND), 'ok');
    assert.equal(take(w, 110 - SEQ_BEHIND), 'replay');
    assert.equal(take(w, 110 - SEQ_BEHIND - 1), 'out-of-window');
    assert.equal(take(w, 95), 'ok');
  });

  it('every number received is a replay afterwards, in order or not', () => {
    const w = new SequenceWindow();
    const order = [5, 7, 6, 9, 8, 12, 10, 11, 20, 13, 19];
    for (const s of order) assert.equal(take(w, s), 'ok', `first ${s}`);
    for (const s of order) assert.equal(w.check(s), s < 20 - SEQ_BEHIND ? 'out-of-window' : 'replay', `again ${s}`);
  });

  it('a jump ahead keeps what the window still covers and forgets nothing it must refuse', () => {
    const w = new SequenceWindow();
    for (let s = 1; s <= 10; s += 2) take(w, s); // 1 3 5 7 9
    take(w, 24);
    assert.equal(w.check(9), 'replay'); // 15 behind, received
    assert.equal(w.check(8), 'ok'); // 16 behind, never received
    assert.equal(w.check(7), 'out-of-window'); // 17 behind
    for (let s = 25; s <= 39; s++) take(w, s);
    take(w, 39 + SEQ_AHEAD);
    assert.equal(w.check(39), 'replay');
    assert.equal(w.check(38), 'replay');
    assert.equal(w.check(37), 'out-of-window');
  });
});
