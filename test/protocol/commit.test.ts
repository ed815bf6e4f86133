/** The two-phase commit state tables (DESIGN §2.5): legal paths, idempotence, illegal events. */
import assert from 'node:assert/strict';
import { UsageError } from '../../common/errors.js';
import type { SaPair } from '../../wire/sa.js';
import { HOST_COMMIT_TABLE, HostCommit, STATION_COMMIT_TABLE, StationCommit, commitIdOf } from '../../protocol/commit.js';

function sa(generation: number, spi = 0x1000 + generation): SaPair {
  const d = (s: number) => ({ spi: s, encKey: new Uint8Array(20), ahSpi: 0, ahKey: new Uint8Array(0) });
  return { generation, transform: 'aes-gcm-16', esn: false, policy: 'esp', toNic: d(spi), fromNic: d(spi + 1), origin: 'ike' };
}

const illegal = (e: unknown) => e instanceof UsageError && e.code === 'E_ILLEGAL_TRANSITION';

describe('two-phase commit tables (DESIGN §2.5)', () => {
  it('station: derived -> READY (generation learnt) -> ACK -> CONFIRM switches, a second READY re-ACKs', () => {
    const c = new StationCommit();
    c.derived({ ...sa(9), generation: 0 }, 'rekey');
    assert.equal(c.state, 'staged');
    const id = commitIdOf(sa(7, 0x1009));
    assert.equal(c.matches(id), true, 'SPIs match, generation not yet known');
    const r = c.ready(id);
    assert.deepEqual([r.first, r.sa.generation, r.role], [true, 7, 'rekey']);
    assert.equal(c.ready(id).first, false, 'a repeated READY is not a new SA');
    assert.deepEqual(c.ackId, id);
    assert.equal(c.confirm({ ...id, generation: 8 }), null, 'a CONFIRM for another SA is ignored');
    assert.equal(c.state, 'acking');
    assert.equal(c.confirm(id)?.generation, 7);
    assert.equal(c.state, 'idle');
  });

  it('station: illegal events throw E_ILLEGAL_TRANSITION and leave the state', () => {
    const c = new StationCommit();
    assert.throws(() => c.ready(commitIdOf(sa(1))), UsageError);
    c.derived(sa(1), 'new');
    assert.throws(() => c.derived(sa(2), 'new'), illegal);
    assert.equal(c.state, 'staged');
    assert.equal(c.abort()?.toNic.spi, sa(1).toNic.spi);
    assert.equal(c.abort(), null);
    assert.deepEqual(Object.keys(STATION_COMMIT_TABLE), ['idle', 'staged', 'acking']);
  });

  it('host: stage -> ACK commits once, a repeated ACK confirms again, an unknown one is refused', () => {
    const h = new HostCommit();
    const s2 = sa(2);
    assert.equal(h.stage(s2, 'ike-a', 0, 1000), null);
    assert.equal(h.ack(commitIdOf(s2), 'ike-b'), 'unknown', 'only the IKE SA that staged it may acknowledge');
    assert.equal(h.ack(commitIdOf(s2), 'ike-a'), 'commit');
    assert.equal(h.ack(commitIdOf(s2), 'ike-a'), 'confirm-again');
    assert.equal(h.ack(commitIdOf(sa(3)), 'ike-a'), 'unknown');
    assert.equal(h.state, 'idle');
  });

  it('host: the deadline discards; a new stage replaces (and returns) the old pending SA', () => {
    const h = new HostCommit();
    h.stage(sa(2), 'ike-a', 0, 1000);
    assert.equal(h.expire(999), null);
    assert.equal(h.expire(1000)?.id.generation, 2);
    assert.equal(h.ack(commitIdOf(sa(2)), 'ike-a'), 'unknown', 'too late: discarded');
    h.stage(sa(3), 'ike-a', 0, 1000);
    assert.equal(h.stage(sa(4), 'ike-b', 10, 1000)?.id.generation, 3);
    assert.equal(h.deadline, 1010);
    assert.equal(h.discard('ike-a'), null, 'not the owner');
    assert.equal(h.discard()?.id.generation, 4);
    assert.deepEqual(Object.keys(HOST_COMMIT_TABLE), ['idle', 'pending']);
  });
});
