/**
 * Issue 15 "rate-limited logs" (DESIGN §6): per NIC and reason at most `burst` lines per window, then one line
 * saying how many more were left out. Driven in virtual time: a fake clock and a queue of timers.
 */
import assert from 'node:assert/strict';
import { createLogger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log-limit.js';

function rig(o: { burst?: number; windowMs?: number; maxGroups?: number } = {}) {
  let now = 0;
  let timers: { at: number; f: () => void; live: boolean }[] = [];
  const lines: any[] = [];
  const limit = new LogLimiter({
    ...o,
    now: () => now,
    after: (ms, f) => {
      const t = { at: now + ms, f, live: true };
      timers.push(t);
      return () => (t.live = false);
    },
  });
  const log = createLogger({ format: 'json', component: 'test', out: (l) => lines.push(JSON.parse(l)), limit });
  const advance = (ms: number) => {
    now += ms;
    const due = timers.filter((t) => t.live && t.at <= now);
    timers = timers.filter((t) => !due.includes(t));
    for (const t of due) t.f();
  };
  return { log, lines, limit, advance, timers: () => timers.filter((t) => t.live).length };
}

describe('lib/log-limit: repeated lines per NIC and reason are summarised', () => {
  it('a flood of one warning: 5 lines, then one summary "N more suppressed in 10 s" when the window ends', () => {
    const r = rig();
    const nic = r.log.child({ nic: 'nic-1' });
    for (let i = 0; i < 15_000; i++) nic.log('warn', 'clear command refused', { command: 'reset', from: `127.0.0.1:${1000 + (i % 50)}` });
    assert.equal(r.lines.length, 5);
    assert.equal(r.limit.suppressedTotal, 14_995);
    r.advance(10_000);
    assert.equal(r.lines.length, 6);
    const s = r.lines[5];
    assert.equal(s.msg, "'clear command refused': 14995 more suppressed in 10 s");
    assert.equal(s.level, 'warn');
    assert.equal(s.nic, 'nic-1');
    assert.equal(s.suppressed, 14995);
    assert.equal(r.timers(), 0, 'no timer left once the summary is out');
  });

  it('groups are per NIC and per reason: another NIC or another reason has its own 5 lines', () => {
    const r = rig();
    for (const id of ['nic-1', 'nic-2']) {
      const nic = r.log.child({ nic: id });
      for (let i = 0; i < 20; i++) nic.log('warn', 'clear command refused');
      for (let i = 0; i < 20; i++) nic.log('warn', 'IKE_SA_INIT refused: no proposal chosen', { event: 'ike.init-refused' });
    }
    assert.equal(r.lines.length, 20);
    r.advance(10_000);
    assert.equal(r.lines.length, 24);
    assert.deepEqual(r.lines.slice(20).map((l) => [l.nic, l.reason, l.suppressed]).sort(), [
      ['nic-1', 'clear command refused', 15], ['nic-1', 'ike.init-refused', 15],
      ['nic-2', 'clear command refused', 15], ['nic-2', 'ike.init-refused', 15],
    ]);
  });

  it("an IKE line's reason is its event; otherwise numbers in the message do not make a new reason", () => {
    const r = rig({ burst: 1 });
    for (let g = 1; g <= 4; g++) r.log.log('warn', `no SA_ACK for generation ${g} within 20000 ms: discarded`, { nic: 'nic-1', event: 'ike.commit-timeout' });
    for (let g = 1; g <= 4; g++) r.log.log('warn', `poll failed after ${g} tries`, { nic: 'nic-1' });
    assert.equal(r.lines.length, 2);
    r.advance(10_000);
    assert.deepEqual(r.lines.slice(2).map((l) => [l.reason, l.suppressed]), [['ike.commit-timeout', 3], ['poll failed after # tries', 3]]);
  });

  it('a quiet group starts a new window: sparse lines are all written, and no summary says 0', () => {
    const r = rig();
    for (let i = 0; i < 10; i++) {
      r.log.child({ nic: 'nic-1' }).log('info', 'host state', { from: 'up', to: 'hung' });
      r.advance(3000);
    }
    assert.equal(r.lines.length, 10);
    assert.ok(r.lines.every((l) => l.msg === 'host state'));
  });

  it('a sustained flood writes 6 lines per 10 s window, whatever its rate', () => {
    const r = rig();
    const nic = r.log.child({ nic: 'nic-1' });
    for (let s = 0; s < 60; s++) {
      for (let i = 0; i < 1000; i++) nic.log('warn', 'clear command refused');
      r.advance(1000);
    }
    assert.equal(r.lines.length, 36);
    assert.equal(r.lines.filter((l) => l.suppressed !== undefined).reduce((n, l) => n + l.suppressed, 0), 60_000 - 30);
  });

  it('flush() writes the pending summaries at once (the process stops), with the seconds that passed', () => {
    const r = rig();
    for (let i = 0; i < 8; i++) r.log.log('warn', 'clear command refused', { nic: 'nic-3' });
    r.advance(2400);
    r.log.flush();
    assert.equal(r.lines.at(-1).msg, "'clear command refused': 3 more suppressed in 2 s");
    assert.equal(r.timers(), 0);
    r.advance(10_000);
    assert.equal(r.lines.length, 6, 'the summary is not written twice');
  });

  it('lines below the level are neither written nor counted; the bound on groups holds', () => {
    const r = rig({ maxGroups: 3 });
    for (let i = 0; i < 100; i++) r.log.log('warn', `reason ${String.fromCharCode(97 + (i % 26))}`, { nic: `nic-${i}` });
    assert.ok(r.lines.length <= 3 * 5 + 5, `${r.lines.length} lines`);
    const quiet = createLogger({ component: 'q', level: 'warn', out: () => assert.fail('written'), limit: new LogLimiter() });
    quiet.log('info', 'not shown');
  });
});
