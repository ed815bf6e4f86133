/**
 * Lifeline's pure IKE machines against a real strongSwan 5.9 charon (Debian strongswan-charon),
 * each run in its own network namespace (test/support/strongswan.ts): charon initiating to our
 * IkeResponder, and our IkeInitiator to charon as responder. IKE SA and Child SA established in
 * plain IKEv2 (charon does not announce COMMIT_SUPPORTED), Child SA rekeys and IKE SA rekeys from
 * both sides, deletes both ways; charon's log and a tshark capture (0 malformed) are checked.
 * Skipped, with the reason, where charon, cc, tshark or namespaces are missing (CI installs them).
 */
import assert from 'node:assert/strict';
import { runInterop, strongswanSkipReason, type InteropReport } from '../support/strongswan.js';

const skip = strongswanSkipReason();
const DEADLINE_MS = 25_000;

function lines(log: string, re: RegExp): string[] {
  return log.split('\n').filter((l) => re.test(l));
}

function common(r: InteropReport): void {
  assert.equal(r.error, undefined, `${r.error}\n${r.effects.join('\n')}\n${r.charonLog.slice(-4000)}`);
  assert.equal(r.ok, true);
  assert.equal(r.malformed, 0, 'tshark: no malformed IKE packet');
  assert.ok(r.packets >= 16, `${r.packets} IKE packets captured`);
  for (const x of ['34', '35', '36', '37']) assert.ok((r.exchanges[x] ?? 0) > 0, `exchange type ${x} on the wire: ${JSON.stringify(r.exchanges)}`);
  assert.deepEqual(lines(r.charonLog, /INVALID_SYNTAX|NO_PROPOSAL_CHOSEN|TS_UNACCEPTABLE|AUTHENTICATION_FAILED|verification failed|unable to install/), [], 'charon reports no error');
  assert.equal(r.effects.filter((e) => e.startsWith('failed')).length, 0, r.effects.join('\n'));
  assert.equal(r.drops.internal, undefined);
}

describe('interop with strongSwan charon 5.9 (network namespace, XFRM shim)', function () {
  this.timeout(DEADLINE_MS + 5000);
  before(function () {
    if (skip) {
      console.log(`      skipped: ${skip}`);
      this.skip();
    }
  });

  it('charon initiates to our IkeResponder: IKE SA, Child SA, Child SA rekeys, IKE SA rekey, charon deletes the Child SA, we delete the IKE SA', async () => {
    const r = await runInterop('charon-initiates', DEADLINE_MS);
    common(r);
    const log = r.charonLog;
    assert.equal(lines(log, /IKE_SA lab\[1\] established between 127\.0\.0\.1\[station\.lab\]\.\.\.127\.0\.0\.1\[nic-1\.lab\]/).length, 1);
    assert.equal(lines(log, /authentication of 'nic-1\.lab' with pre-shared key successful/).length, 1);
    // §2.9: we answered charon's own narrow selectors, not 0.0.0.0/0
    assert.ok(lines(log, /CHILD_SA nic\{1\} established .* TS 127\.0\.0\.1\/32\[udp\] === 127\.0\.0\.1\/32\[udp\/664\]/).length === 1, log);
    assert.ok(lines(log, /outbound CHILD_SA nic\{[23]\} established/).length >= 2, 'two Child SA rekeys by charon');
    assert.ok(lines(log, /IKE_SA lab\[\d+\] rekeyed between/).length >= 1, 'an IKE SA rekey by charon');
    assert.ok(lines(log, /sending DELETE for ESP CHILD_SA/).length >= 3, 'charon deleted the rekeyed and the terminated Child SAs');
    assert.equal(lines(log, /received DELETE for IKE_SA lab\[\d+\]/).length, 1, 'our D(IKE) reached charon');
    // our side: plain IKEv2, every SA written and committed (the NIC's rule), the IKE SA moved and closed
    assert.ok(r.effects.some((e) => /plain IKEv2/.test(e)));
    assert.equal(r.effects.filter((e) => e.startsWith('nic-commit')).length, 3);
    assert.ok(r.effects.filter((e) => e.startsWith('ike-rekeyed')).length >= 1);
    assert.ok(r.effects.some((e) => e.startsWith('closed')));
  });

  it('our IkeInitiator to charon as responder: IKE SA, Child SA, rekeys of both from both sides, charon deletes the IKE SA', async () => {
    const r = await runInterop('lifeline-initiates', DEADLINE_MS);
    common(r);
    const log = r.charonLog;
    assert.equal(lines(log, /IKE_SA lab\[1\] established between 127\.0\.0\.1\[nic-1\.lab\]\.\.\.127\.0\.0\.1\[station\.lab\]/).length, 1);
    assert.equal(lines(log, /authentication of 'station\.lab' with pre-shared key successful/).length, 1);
    assert.ok(lines(log, /received DELETE for ESP CHILD_SA/).length >= 1, 'our D(ESP) after our Child SA rekey');
    assert.ok(lines(log, /received DELETE for IKE_SA lab\[1\]/).length === 1, 'our D(IKE) of the old IKE SA after our IKE SA rekey');
    assert.ok(lines(log, /establishing CHILD_SA nic\{\d+\} reqid/).length >= 1, "charon's own Child SA rekey");
    assert.ok(lines(log, /initiating IKE_SA lab\[\d+\] to 127\.0\.0\.1/).length >= 1, "charon's own IKE SA rekey");
    assert.ok(lines(log, /sending DELETE for IKE_SA lab\[\d+\]/).length >= 1, 'charon deleted the IKE SA');
    const switches = r.effects.filter((e) => e.startsWith('switch-outbound'));
    assert.ok(switches.length >= 3, r.effects.join('\n'));
    assert.ok(r.effects.some((e) => /peer deleted the SA it rekeyed/.test(e)), 'the station switched when charon deleted the old Child SA (§2.8)');
    assert.ok(r.effects.filter((e) => e.startsWith('ike-rekeyed')).length >= 2, 'an IKE SA rekey from each side');
    assert.ok(r.effects.some((e) => e.startsWith('closed')));
  });
});
