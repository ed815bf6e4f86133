import assert from 'node:assert/strict';
import { MemoryEepromDevice, TearingEepromDevice, TornWriteError } from '../../firmware/eeprom-device.js';
import { EEPROM_PAGE, EEPROM_SIZE, EepromImage, type NicConfig } from '../../firmware/eeprom-image.js';
import { SaDatabase, reserveUpTo, resumeAfterPeerRestart } from '../../firmware/sa-database.js';
import { isLifelineError } from '../../common/errors.js';
import { prng } from '../support/prng.js';
import type { SaPair } from '../../wire/sa.js';

const K = 16384;

function makeSa(generation: number, esn = false): SaPair {
  const key = (s: number) => new Uint8Array(36).map((_, i) => (s * 13 + i) & 0xff);
  return {
    generation,
    transform: 'aes-gcm-16',
    esn,
    policy: 'esp',
    toNic: { spi: 0x100 + generation, encKey: key(generation), ahSpi: 0, ahKey: new Uint8Array(0) },
    fromNic: { spi: 0x200 + generation, encKey: key(generation + 50), ahSpi: 0, ahKey: new Uint8Array(0) },
    origin: 'ike',
  };
}

const config: NicConfig = { securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'psk', key: new Uint8Array(32).fill(7) }, clusterPolicy: '' };

/** A NIC with a fresh EEPROM; `restart()` boots a new database from the same device. */
class Nic {
  dev = new MemoryEepromDevice(EEPROM_SIZE);
  db: SaDatabase;
  constructor(readonly block = K) {
    this.db = new SaDatabase(EepromImage.format(this.dev, 'NIC-1', config), { checkpointBlock: block });
  }
  restart(): SaDatabase {
    this.db = new SaDatabase(EepromImage.load(this.dev, 'nic-1.eeprom'), { checkpointBlock: this.block });
    return this.db;
  }
  /** SA refresh as the host agent runs it: write pending, then commit on SA_ACK (DESIGN §2.5). */
  refresh(): SaPair {
    const sa = makeSa(this.db.nextGeneration());
    this.db.writePending(sa);
    this.db.commitPending(sa.generation);
    return sa;
  }
  get writes() {
    return this.db.image.pageWrites;
  }
}

function expectCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => isLifelineError(e) && e.code === code);
}

describe('SA database (DESIGN §2.5, §2.6)', () => {
  describe('two-phase refresh', () => {
    it('a refresh (write pending + commit) costs at most 4 page writes', () => {
      const nic = new Nic();
      nic.refresh();
      nic.db.onAuthenticated(1, 1n);
      for (let i = 0; i < 5; i++) {
        const before = nic.writes.total;
        nic.refresh();
        assert.ok(nic.writes.total - before <= 4, `refresh ${i} wrote ${nic.writes.total - before} pages`);
      }
    });

    it('a pending SA does not accept station packets until committed', () => {
      const nic = new Nic();
      const a = nic.refresh();
      const b = makeSa(nic.db.nextGeneration());
      nic.db.writePending(b);
      assert.deepEqual(nic.db.pending, b);
      assert.equal(nic.db.lookupInbound(b.toNic.spi), null);
      expectCode(() => nic.db.onAuthenticated(b.generation, 1n), 'E_NO_SA');
      assert.deepEqual(nic.db.lookupInbound(a.toNic.spi), a);
      nic.db.commitPending(b.generation);
      assert.deepEqual(nic.db.lookupInbound(b.toNic.spi), b);
    });

    it('SA_CONFIRM is idempotent: committing the active generation again does nothing', () => {
      const nic = new Nic();
      const a = nic.refresh();
      const before = nic.writes.total;
      assert.equal(nic.db.commitPending(a.generation), false);
      assert.equal(nic.writes.total, before);
      expectCode(() => nic.db.commitPending(a.generation + 5), 'E_NO_SA');
    });

    it('no SA_ACK: discarding pending leaves the SAs in force and survives a restart', () => {
      const nic = new Nic();
      const a = nic.refresh();
      const b = makeSa(nic.db.nextGeneration());
      nic.db.writePending(b);
      assert.equal(nic.db.discardPending(b.generation), true);
      assert.equal(nic.db.discardPending(b.generation), false);
      const db = nic.restart();
      assert.deepEqual([db.active, db.previous, db.pending], [a, null, null]);
      assert.equal(db.nextGeneration(), b.generation + 1);
    });
  });

  describe('make-before-break (RFC 7296 §2.8)', () => {
    it('a station that never switched keeps its SA across any number of commits and restarts', () => {
      const nic = new Nic();
      const a = nic.refresh();
      nic.db.onAuthenticated(a.generation, 1n);
      let seq = 1n;
      for (let i = 0; i < 6; i++) {
        const n = nic.refresh(); // SA_CONFIRM lost every time: the station stays on `a`
        if (i % 2 === 1) nic.restart();
        assert.deepEqual(nic.db.active, n);
        assert.deepEqual(nic.db.previous, a, `after commit ${i}`);
        assert.deepEqual(nic.db.lookupInbound(a.toNic.spi), a);
        nic.db.onAuthenticated(a.generation, ++seq + BigInt(i) * BigInt(K));
      }
    });

    it('the first packet under the active SA retires the previous one, also across a restart', () => {
      const nic = new Nic();
      const a = nic.refresh();
      nic.db.onAuthenticated(a.generation, 1n);
      const b = nic.refresh();
      assert.deepEqual(nic.db.previous, a);
      assert.deepEqual(nic.db.onAuthenticated(b.generation, 1n), { checkpointed: true });
      assert.equal(nic.db.previous, null);
      assert.equal(nic.db.lookupInbound(a.toNic.spi), null);
      assert.equal(nic.restart().previous, null);
      assert.deepEqual(nic.db.active, b);
    });

    it('with nothing authenticated yet, a commit keeps the outgoing active SA as previous', () => {
      const nic = new Nic();
      nic.refresh();
      const b = nic.refresh();
      const c = nic.refresh();
      assert.deepEqual([nic.db.active, nic.db.previous], [c, b]);
    });

    it('every sequence of refresh / station packet (newest or lagging) / restart keeps a common SA', () => {
      // The station's view: it switches to the newest SA only on "use newest"; else it lags on the SA it
      // used last. Whatever it used last must still be accepted by the NIC (DESIGN §2.5).
      const events = ['refresh', 'useNewest', 'useLast', 'restart'] as const;
      let sequences = 0;
      const run = (path: (typeof events)[number][]) => {
        const nic = new Nic(64);
        let stationSa = nic.refresh();
        let seq = 0n;
        nic.db.onAuthenticated(stationSa.generation, ++seq);
        for (const e of path) {
          if (e === 'refresh') nic.refresh();
          if (e === 'restart') nic.restart();
          if (e === 'useNewest') {
            stationSa = nic.db.active!;
            seq = resumeAfterPeerRestart(seq, 64); // the station cannot tell whether the NIC restarted
          }
          if (e === 'useNewest' || e === 'useLast') {
            const found = nic.db.lookupInbound(stationSa.toNic.spi);
            assert.deepEqual(found, stationSa, `path ${path.join(',')}`);
            seq = resumeAfterPeerRestart(seq, 64);
            nic.db.onAuthenticated(found!.generation, seq);
            const answer = nic.db.nextOutbound(found!.generation); // answers go under the request's SA
            assert.ok(answer.seq >= 1n);
          }
          assert.deepEqual(nic.db.lookupInbound(stationSa.toNic.spi), stationSa, `after ${path.join(',')}`);
        }
        sequences++;
      };
      const walk = (path: (typeof events)[number][], depth: number) => {
        run(path);
        if (depth > 0) for (const e of events) walk([...path, e], depth - 1);
      };
      walk([], 5);
      assert.equal(sequences, (4 ** 6 - 1) / 3);
    });
  });

  describe('sequence numbers across restarts', () => {
    it('1,000,000 requests and their answers with K=16384 cost at most 100 checkpoint pages', () => {
      const nic = new Nic();
      const a = nic.refresh();
      const before = nic.writes.byRegion.checkpoint;
      let written = 0;
      for (let seq = 1n; seq <= 1_000_000n; seq++) {
        if (nic.db.onAuthenticated(a.generation, seq).checkpointed) written++;
        if (nic.db.nextOutbound(a.generation).checkpointed) written++;
      }
      const pages = nic.writes.byRegion.checkpoint - before;
      assert.equal(pages, written);
      assert.ok(pages <= 100, `${pages} checkpoint pages per 10^6 requests + 10^6 answers`);
      assert.ok(pages >= 1_000_000 / K, 'one page per block of K, not fewer');
    });

    it('after a restart outbound resumes above the reserved block and inbound at or below it is a replay', () => {
      const nic = new Nic();
      const a = nic.refresh();
      let out = 0n;
      for (let seq = 1n; seq <= 40_000n; seq++) {
        nic.db.onAuthenticated(a.generation, seq);
        out = nic.db.nextOutbound(a.generation).seq;
      }
      const [cp] = nic.db.image.checkpoints();
      assert.ok(cp.outReserved >= out && cp.inReserved >= 40_000n);
      const db = nic.restart();
      const next = db.nextOutbound(a.generation);
      assert.equal(next.seq, cp.outReserved + 1n);
      assert.equal(next.checkpointed, true);
      assert.equal(db.inboundFloor(a.generation), cp.inReserved);
      for (const captured of [1n, 39_999n, 40_000n, cp.inReserved]) expectCode(() => db.onAuthenticated(a.generation, captured), 'E_REPLAY');
      const resume = resumeAfterPeerRestart(40_000n, K);
      assert.ok(resume > cp.inReserved);
      assert.deepEqual(db.onAuthenticated(a.generation, resume), { checkpointed: true });
    });

    it('a station resuming with resumeAfterPeerRestart() is accepted after any number of NIC restarts', () => {
      const nic = new Nic(64);
      const a = nic.refresh();
      let sent = 0n;
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < (round % 3) * 50; i++) nic.db.onAuthenticated(a.generation, ++sent);
        nic.restart();
        // The NIC sends alerts (outbound only, a checkpoint each boot) and may restart again before the
        // station speaks: its inbound reservation must not creep upwards meanwhile.
        for (let i = 0; i < (round % 4) * 40; i++) nic.db.nextOutbound(a.generation);
        if (round % 2 === 1) nic.restart();
        sent = resumeAfterPeerRestart(sent, 64);
        assert.ok(sent > nic.db.inboundFloor(a.generation), `round ${round}`);
        nic.db.onAuthenticated(a.generation, sent);
      }
    });

    it('a newest checkpoint unreadable at boot (torn, or gone bad after use): nothing used under it is used or accepted again', () => {
      // Pages 3-10 hold the ring (eeprom-image.ts); the newest record is the one with the highest generation.
      const newestPage = (img: Uint8Array) => {
        let best = -1;
        for (let p = 3; p <= 10; p++) if (img[p * EEPROM_PAGE] === 0x05 && (best < 0 || u32be(img, p * EEPROM_PAGE + 4) > u32be(img, best * EEPROM_PAGE + 4))) best = p;
        return best;
      };
      const u32be = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
      const nic = new Nic(16);
      const a = nic.refresh();
      const rnd = prng(4);
      nic.db.onAuthenticated(a.generation, 1n); // the first checkpoint
      let inSeq = 1n;
      let outSeq = 0n;
      for (let step = 0; step < 300; step++) {
        // Requests and answers, not in lockstep (commands get an ACK and a response; some requests go unanswered).
        for (let i = rnd.int(12); i > 0; i--) nic.db.onAuthenticated(a.generation, ++inSeq);
        for (let i = rnd.int(12); i > 0; i--) outSeq = nic.db.nextOutbound(a.generation).seq;
        const image = nic.dev.image.slice();
        // The checkpoint everything above was used under goes bad: a flipped bit, or a zeroed frame.
        const at = newestPage(image) * EEPROM_PAGE;
        if (step % 2 === 0) image[at + 20] ^= 0x10;
        else image.fill(0, at, at + 8);
        const booted = new SaDatabase(EepromImage.load(new MemoryEepromDevice(image)), { checkpointBlock: 16 });
        assert.equal(booted.image.newestCheckpointMayBeLost, true);
        assert.ok(booted.outboundStart(a.generation) > outSeq, `step ${step}: outbound resumes above ${outSeq}`);
        expectCode(() => booted.onAuthenticated(a.generation, inSeq), 'E_REPLAY');
        // A station that suspects the restart resumes above the raised floor at once.
        assert.deepEqual(booted.onAuthenticated(a.generation, resumeAfterPeerRestart(inSeq, 16)), { checkpointed: true });
      }
    });

    it('reservations end on multiples of K, at least K/2 ahead', () => {
      assert.equal(reserveUpTo(1n, K), BigInt(K));
      assert.equal(reserveUpTo(BigInt(K) + 1n, K), BigInt(2 * K));
      assert.equal(reserveUpTo(BigInt(K) - BigInt(K / 2) - 1n, K), BigInt(K));
      assert.equal(reserveUpTo(BigInt(K) - BigInt(K / 2), K), BigInt(2 * K));
      assert.equal(reserveUpTo(2n ** 32n - 5n, K, 2n ** 32n - 1n), 2n ** 32n - 1n);
    });

    it('a checkpoint torn at every byte resumes above every number handed out', () => {
      const nic = new Nic(16);
      const a = nic.refresh();
      nic.db.onAuthenticated(a.generation, 1n);
      for (let i = 0; i < 16; i++) nic.db.nextOutbound(a.generation); // outbound 1..16 reserved and used
      const base = nic.dev.image.slice();
      for (let b = 0; b <= EEPROM_PAGE; b++) {
        const dev = new TearingEepromDevice(base, { atWrite: 0, atByte: b });
        const db = new SaDatabase(EepromImage.load(dev), { checkpointBlock: 16 });
        assert.throws(() => {
          for (;;) db.nextOutbound(a.generation);
        }, TornWriteError);
        const after = new SaDatabase(EepromImage.load(new MemoryEepromDevice(dev.image)), { checkpointBlock: 16 });
        assert.ok(after.outboundStart(a.generation) > 16n, `tear at ${b}`);
        assert.deepEqual(after.active, a);
      }
    });

    it('the checkpoint that retires the previous SA, torn at every byte: previous kept or retired, active intact', () => {
      const nic = new Nic();
      const a = nic.refresh();
      nic.db.onAuthenticated(a.generation, 1n);
      const b = nic.refresh();
      const base = nic.dev.image.slice();
      for (let at = 0; at <= EEPROM_PAGE; at++) {
        const dev = new TearingEepromDevice(base, { atWrite: 0, atByte: at });
        const db = new SaDatabase(EepromImage.load(dev));
        assert.throws(() => db.onAuthenticated(b.generation, 1n), TornWriteError);
        const after = new SaDatabase(EepromImage.load(new MemoryEepromDevice(dev.image)));
        assert.deepEqual(after.active, b);
        assert.ok(after.previous === null ? after.lastAuthenticated === b.generation : after.previous.generation === a.generation);
      }
    });

    it('a 32-bit sequence space never cycles: E_SEQ_EXHAUSTED, refresh needed (RFC 4303 §3.3.3)', () => {
      const nic = new Nic();
      const a = makeSa(1);
      nic.db.image.writePending(a, { outReserved: 2n ** 32n - 3n, inReserved: 0n });
      nic.db.image.commitPending(0);
      const db = nic.restart();
      assert.equal(db.nextOutbound(1).seq, 2n ** 32n - 2n);
      assert.equal(db.nextOutbound(1).seq, 2n ** 32n - 1n);
      expectCode(() => db.nextOutbound(1), 'E_SEQ_EXHAUSTED');
    });
  });
});
