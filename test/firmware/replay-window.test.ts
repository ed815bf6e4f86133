import assert from 'node:assert/strict';
import { ReplayWindow } from '../../wire/replay-window.js';

/** check() then mark(), as a receiver does once the ICV verified; returns whether it was accepted. */
function receive(w: ReplayWindow, seq: bigint): boolean {
  if (!w.check(seq)) return false;
  w.mark(seq);
  return true;
}

describe('ReplayWindow (RFC 4303 §3.4.3, RFC 6479 bitmap)', () => {
  it('defaults to a 1024-packet window with floor 0: sequence number 0 is never accepted', () => {
    const w = new ReplayWindow();
    assert.equal(w.size, 1024);
    assert.equal(w.highest, 0n);
    assert.equal(w.check(0n), false);
    assert.equal(w.check(1n), true);
  });

  it('check() does not mark; mark() does', () => {
    const w = new ReplayWindow();
    assert.equal(w.check(7n), true);
    assert.equal(w.check(7n), true);
    w.mark(7n);
    assert.equal(w.check(7n), false);
    assert.equal(w.highest, 7n);
  });

  it('refuses duplicates', () => {
    const w = new ReplayWindow();
    for (let s = 1n; s <= 40n; s++) assert.equal(receive(w, s), true);
    for (let s = 1n; s <= 40n; s++) assert.equal(w.check(s), false, `seq ${s}`);
    assert.equal(w.refusal(3n), 'already received');
  });

  it('accepts out-of-order packets within the window, once each', () => {
    const w = new ReplayWindow();
    assert.equal(receive(w, 100n), true);
    assert.equal(receive(w, 50n), true);
    assert.equal(receive(w, 99n), true);
    assert.equal(receive(w, 50n), false);
    assert.equal(w.highest, 100n);
    assert.equal(receive(w, 98n), true);
  });

  it('window 1024: accepts highest - 1023, refuses highest - 1024 as too old', () => {
    const w = new ReplayWindow(1024);
    w.mark(2000n);
    assert.equal(w.check(977n), true);
    assert.equal(w.check(976n), false);
    assert.match(w.refusal(976n), /older than the 1024-packet window ending at 2000/);
  });

  it('a big jump clears the whole bitmap and leaves older numbers too old', () => {
    const w = new ReplayWindow(128);
    for (let s = 1n; s <= 128n; s++) w.mark(s);
    w.mark(1_000_000n);
    assert.equal(w.check(128n), false);
    for (let s = 1_000_000n - 127n; s < 1_000_000n; s++) assert.equal(w.check(s), true, `seq ${s}`);
  });

  it('reused bitmap blocks are zeroed when the right edge moves into them', () => {
    // Window 128 = 4 blocks of 32 + 1 spare. Seq 41 (block 1) and 201 (block 6) share slot 1, bit 9.
    const w = new ReplayWindow(128);
    w.mark(41n);
    w.mark(100n); // block 3
    w.mark(200n); // block 6: slots 4, 0, 1 are zeroed, slot 3 is kept
    assert.equal(w.check(201n), true, 'stale bit of 41 must be gone');
    assert.equal(w.check(100n), false, 'still in the window and marked');
    assert.equal(w.check(101n), true);
  });

  it('a restart checkpoint floor refuses everything at or below it', () => {
    const w = new ReplayWindow(1024, 5000n);
    assert.equal(w.highest, 5000n);
    assert.equal(w.check(5000n), false);
    assert.equal(w.check(4999n), false);
    assert.equal(w.check(1n), false);
    assert.equal(w.check(5001n), true);
    assert.match(w.refusal(4000n), /restart checkpoint 5000/);
    w.mark(5003n);
    assert.equal(w.check(5001n), true);
    assert.equal(w.check(5000n), false);
  });

  // check() and mark() work in JS numbers up to 2^53 - 1 and in BigInt above: the model runs below, across and
  // above that boundary.
  for (const start of [0n, 2n ** 53n - 4000n, 2n ** 60n]) {
    it(`agrees with a set-based model over 4000 pseudo-random receptions (window 128, from ${start})`, () => {
      const w = new ReplayWindow(128, start);
      const seen = new Set<bigint>();
      let highest = start;
      let x = 12345;
      const rnd = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32;
      for (let i = 0; i < 4000; i++) {
        const r = rnd();
        // Mostly near the edge, sometimes behind it, sometimes a jump ahead.
        const delta = r < 0.05 ? BigInt(Math.floor(rnd() * 600)) : BigInt(Math.floor(rnd() * 200)) - 150n;
        let seq = highest + delta;
        if (seq < 0n) seq = 0n;
        const expected = seq > start && !seen.has(seq) && (seq > highest || highest - seq < 128n);
        assert.equal(w.check(seq), expected, `step ${i} seq ${seq} highest ${highest}`);
        if (expected) {
          w.mark(seq);
          seen.add(seq);
          if (seq > highest) highest = seq;
        }
      }
      assert.equal(w.highest, highest);
      if (start > 0n) assert.ok(highest > 2n ** 53n, 'the walk got past 2^53');
    });
  }

  it('handles the top of the 64-bit space', () => {
    const max = (1n << 64n) - 1n;
    const w = new ReplayWindow(1024, max - 10n);
    assert.equal(receive(w, max), true);
    assert.equal(receive(w, max), false);
    assert.equal(receive(w, max - 5n), true);
    assert.throws(() => w.check(max + 1n), { code: 'E_USAGE' });
  });

  it('rejects bad sizes and misuse with E_USAGE', () => {
    assert.throws(() => new ReplayWindow(64), { code: 'E_USAGE' });
    assert.throws(() => new ReplayWindow(1000), { code: 'E_USAGE' });
    assert.throws(() => new ReplayWindow(1024, -1n), { code: 'E_USAGE' });
    const w = new ReplayWindow(128);
    w.mark(1000n);
    assert.throws(() => w.mark(10n), { code: 'E_USAGE' }, 'marking left of the window');
    assert.throws(() => w.check(5 as unknown as bigint), { code: 'E_USAGE' });
  });

  describe('inferEsn (RFC 4303 Appendix A2.2), W = 1024', () => {
    const hi = (h: bigint, l: number): bigint => (h << 32n) | BigInt(l);

    it('case A (window inside one subspace): same subspace, or the next one for numbers below the window', () => {
      const w = new ReplayWindow(1024, hi(1n, 5000));
      assert.equal(w.inferEsn(4000), hi(1n, 4000));
      assert.equal(w.inferEsn(3977), hi(1n, 3977)); // Tl - (W - 1): the left edge
      assert.equal(w.inferEsn(3976), hi(2n, 3976)); // below it: taken as the next subspace
      assert.equal(w.inferEsn(6000), hi(1n, 6000));
    });

    it('case B (window spans two subspaces): numbers above the left edge belong to the previous one', () => {
      const w = new ReplayWindow(1024, hi(1n, 10));
      assert.equal(w.inferEsn(0xfffffff0), hi(0n, 0xfffffff0));
      assert.equal(w.inferEsn(0xfffffc0b), hi(0n, 0xfffffc0b)); // 10 - 1023 mod 2^32
      assert.equal(w.inferEsn(0xfffffc0a), hi(1n, 0xfffffc0a));
      assert.equal(w.inferEsn(20), hi(1n, 20));
    });

    it('case B in the first subspace has no previous subspace', () => {
      const w = new ReplayWindow(1024, 10n);
      assert.equal(w.inferEsn(0xfffffff0), 0xfffffff0n);
      assert.equal(w.inferEsn(11), 11n);
    });

    it('crosses 2^32 as the right edge passes it', () => {
      const w = new ReplayWindow(1024, 0xfffffff0n);
      assert.equal(w.inferEsn(0xfffffffa), 0xfffffffan);
      assert.equal(w.inferEsn(5), hi(1n, 5));
      w.mark(hi(1n, 5));
      assert.equal(w.inferEsn(0xfffffffa), 0xfffffffan); // late packet from before the boundary
      assert.equal(w.check(w.inferEsn(0xfffffffa)), true);
      assert.equal(w.inferEsn(6), hi(1n, 6));
    });

    it('rejects values that are not 32-bit numbers', () => {
      const w = new ReplayWindow();
      assert.throws(() => w.inferEsn(2 ** 32), { code: 'E_USAGE' });
      assert.throws(() => w.inferEsn(-1), { code: 'E_USAGE' });
    });
  });
});
