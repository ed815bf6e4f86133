/**
 * lib/answer-poll.ts on a fake clock: the station polls from each transmission until no request awaits an
 * answer or the window has passed, never without a request in flight, and backs off when preempted.
 */
import assert from 'node:assert/strict';
import { AnswerPoll } from '../../lib/answer-poll.js';
import { FakeClock } from '../support/fake-poll-clock.js';

describe('station answer polling (lib/answer-poll.ts)', () => {
  it('polls from the send until the answer: a hit, and no poll step after it', () => {
    const c = new FakeClock();
    const p = new AnswerPoll(200, c);
    p.open();
    p.sent();
    assert.equal(c.polling, true);
    c.run(c.now + 40); // the answer comes 40 µs later
    p.close();
    assert.equal(p.hits, 1);
    const steps = c.steps;
    c.run(c.now + 1000);
    assert.ok(c.steps - steps <= 1, 'at most the step already queued runs after the answer');
    assert.equal(c.polling, false);
    assert.equal(p.misses, 0);
  });

  it('a NIC that does not answer costs one window per transmission, a miss each', () => {
    const c = new FakeClock();
    const p = new AnswerPoll(200, c);
    p.open();
    for (let attempt = 0; attempt < 3; attempt++) {
      const steps = c.steps;
      p.sent();
      c.run(c.now + 250_000); // the retransmission interval
      assert.ok(c.steps - steps <= 201, `${c.steps - steps} poll steps of 1 µs`);
      assert.equal(c.polling, false);
    }
    p.close();
    assert.deepEqual(p.stats(), { maxUs: 200, hits: 0, misses: 3, backoffs: 0 });
  });

  it('with several requests in flight it polls until the last is answered, the window counted from the latest send', () => {
    const c = new FakeClock();
    const p = new AnswerPoll(200, c);
    p.open();
    p.sent();
    c.run(c.now + 150);
    p.open();
    p.sent();
    c.run(c.now + 100); // 250 µs after the first send, 100 after the second
    assert.equal(c.polling, true);
    p.close();
    assert.equal(c.polling, true, 'one request still awaits its answer');
    c.run(c.now + 20);
    p.close();
    c.run(c.now + 1000);
    assert.equal(c.polling, false);
    assert.equal(p.hits, 2);
  });

  it('never polls without a request in flight, nor with a window of 0; out-of-range windows are refused', () => {
    const c = new FakeClock();
    const p = new AnswerPoll(200, c);
    p.sent(); // an answer to a NIC's heartbeat, say: nothing awaited
    assert.equal(c.polling, false);
    const off = new AnswerPoll(0, c);
    off.open();
    off.sent();
    c.run(c.now + 1000);
    off.close();
    assert.equal(c.steps, 0);
    assert.throws(() => new AnswerPoll(-1), RangeError);
    assert.throws(() => new AnswerPoll(2.5), RangeError);
    assert.throws(() => new AnswerPoll(100_001), RangeError);
  });

  it('stops polling for 100 ms when another process preempts it (the NIC emulator on the same CPU)', () => {
    const c = new FakeClock();
    const p = new AnswerPoll(200, c);
    c.switchesPerStep = 0.1;
    for (let i = 0; i < 2000 && p.stats().backoffs === 0; i++) {
      p.open();
      p.sent();
      c.run(c.now + 30);
      p.close();
    }
    assert.equal(p.stats().backoffs, 1);
    p.open();
    p.sent();
    assert.equal(c.polling, false, 'no polling during the back-off');
    c.run(c.now + 100_100);
    p.sent();
    assert.equal(c.polling, true, 'polling resumes after it');
    p.close();
  });
});
