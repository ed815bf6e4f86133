/**
 * nic-emulator/busy-poll.ts on a fake clock: the polling window adapts to the gaps between datagrams as the
 * haltpoll governor's poll time does, and polling stops while another process preempts it.
 */
import assert from 'node:assert/strict';
import { BusyPoll } from '../../nic-emulator/busy-poll.js';
import { FakeClock } from '../support/fake-poll-clock.js';

/** `n` datagrams, each `gapUs` after the previous one, the loop running in between. */
function datagrams(c: FakeClock, b: BusyPoll, n: number, gapUs: number): void {
  for (let i = 0; i < n; i++) {
    c.run(c.now + gapUs);
    b.onDatagram();
  }
}

describe('emulator busy polling (nic-emulator/busy-poll.ts)', () => {
  it('a lone datagram does not poll; datagrams closer than the maximum grow the window 10, 20, 40 ... up to it', () => {
    const c = new FakeClock();
    const b = new BusyPoll(200, c);
    b.onDatagram();
    assert.equal(b.windowUs, 0);
    assert.equal(c.polling, false);
    const windows: number[] = [];
    for (let i = 0; i < 6; i++) {
      c.run(c.now + 190); // the loop polls out its window, then sleeps; the next datagram comes 190 µs later
      b.onDatagram();
      windows.push(b.windowUs);
    }
    assert.deepEqual(windows, [10, 20, 40, 80, 160, 200]);
  });

  it('a datagram within the window is a hit and leaves the window; the loop keeps polling until it passes', () => {
    const c = new FakeClock();
    const b = new BusyPoll(200, c);
    datagrams(c, b, 8, 190);
    assert.equal(b.windowUs, 200);
    const hitsBefore = b.hits;
    for (let i = 0; i < 100; i++) {
      c.run(c.now + 50); // a steady exchange every 50 µs: never a wake-up
      assert.equal(c.polling, true);
      b.onDatagram();
    }
    assert.equal(b.hits - hitsBefore, 100);
    assert.equal(b.windowUs, 200);
    c.run(c.now + 1000);
    assert.equal(c.polling, false, 'polling ends one window after the last datagram');
  });

  it('sparse traffic halves the window down to 0: an idle emulator never polls', () => {
    const c = new FakeClock();
    const b = new BusyPoll(200, c);
    datagrams(c, b, 8, 150);
    assert.equal(b.windowUs, 160); // 10, 20, 40, 80, 160, then datagrams 150 µs apart fall within it
    const windows: number[] = [];
    for (let i = 0; i < 6; i++) {
      c.run(c.now + 5000);
      b.onDatagram();
      windows.push(b.windowUs);
    }
    assert.deepEqual(windows, [80, 40, 20, 10, 0, 0]);
    const steps = c.steps;
    c.run(c.now + 5000);
    assert.equal(c.steps, steps, 'no poll step once the window is 0');
  });

  it('the CPU spent is at most one window per datagram', () => {
    const c = new FakeClock();
    const b = new BusyPoll(200, c);
    datagrams(c, b, 1000, 190);
    assert.ok(c.steps <= 1000 * 200, `${c.steps} poll steps of 1 µs`);
    assert.ok(b.misses > 0 || b.hits > 0);
  });

  it('stops polling for 100 ms when another process preempts it (a client on the same CPU), then tries again', () => {
    const c = new FakeClock();
    const b = new BusyPoll(200, c);
    c.switchesPerStep = 0.1; // preempted every 10 µs of polling
    for (let i = 0; i < 2000 && b.backoffs === 0; i++) {
      c.run(c.now + 30);
      b.onDatagram();
    }
    assert.equal(b.backoffs, 1);
    assert.equal(c.polling, false);
    const t = c.now;
    for (; c.now < t + 99_000; ) {
      c.run(c.now + 30);
      b.onDatagram();
      assert.equal(c.polling, false, 'no polling during the back-off');
    }
    c.run(t + 100_100);
    b.onDatagram();
    c.run(c.now + 30);
    b.onDatagram();
    assert.equal(c.polling, true, 'polling resumes after the back-off');
  });

  it('rare preemptions (our own GC threads, kernel work) do not stop it', () => {
    const c = new FakeClock();
    const b = new BusyPoll(200, c);
    c.switchesPerStep = 0.0005; // one per 2 ms of polling
    datagrams(c, b, 5000, 30);
    assert.equal(b.backoffs, 0);
  });

  it('--busy-poll-us 0 never polls; out-of-range windows are refused', () => {
    const c = new FakeClock();
    const b = new BusyPoll(0, c);
    datagrams(c, b, 10, 20);
    assert.equal(c.steps, 0);
    assert.throws(() => new BusyPoll(-1), RangeError);
    assert.throws(() => new BusyPoll(1.5), RangeError);
    assert.throws(() => new BusyPoll(100_001), RangeError);
  });
});
