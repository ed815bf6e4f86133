import assert from 'node:assert/strict';
import { MemoryEepromDevice, TearingEepromDevice, TornWriteError } from '../../firmware/eeprom-device.js';
import { EEPROM_PAGE, EEPROM_SIZE, EepromImage, type NicConfig } from '../../firmware/eeprom-image.js';
import { isLifelineError } from '../../common/errors.js';
import type { SaPair } from '../../wire/sa.js';

const FILE = '/var/lib/lifeline/nic-0007.eeprom';

function bytes(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (seed * 31 + i * 7) & 0xff);
}

function makeSa(generation: number, policy: SaPair['policy'] = 'esp'): SaPair {
  const ah = (s: number) => (policy === 'esp+ah' ? bytes(32, s) : new Uint8Array(0));
  return {
    generation,
    transform: 'aes-gcm-16',
    esn: generation % 2 === 0,
    policy,
    toNic: { spi: 0x1000 + generation, encKey: bytes(36, generation), ahSpi: policy === 'esp+ah' ? 0x2000 + generation : 0, ahKey: ah(generation + 1) },
    fromNic: { spi: 0x3000 + generation, encKey: bytes(36, generation + 2), ahSpi: policy === 'esp+ah' ? 0x4000 + generation : 0, ahKey: ah(generation + 3) },
    origin: 'ike',
  };
}

function makeConfig(policyText = '[GENERAL]\nHeartbeat = INSTANT\n[CLUSTER]\nCluster1 = 127.0.0.1\n'): NicConfig {
  return {
    securityPolicy: 'esp',
    clearManagement: true,
    allowedClearCommands: 1 | 8,
    trustAnchor: { kind: 'psk', key: bytes(32, 9) },
    clusterPolicy: policyText,
  };
}

/** A ~1 KiB policy, the most the configuration record holds (17 pages). */
const BIG_POLICY = '[GENERAL]\nHeartbeat = DEFERRED\nHeartbeatResponseTime = 5\n[CLUSTER]\n' +
  Array.from({ length: 40 }, (_, i) => `Cluster${i} = 10.0.${i}.1 10.0.${i}.2\n`).join('');
const MAX_POLICY = BIG_POLICY.slice(0, 1024);

function fresh(): { dev: MemoryEepromDevice; img: EepromImage } {
  const dev = new MemoryEepromDevice(EEPROM_SIZE);
  return { dev, img: EepromImage.format(dev, 'NIC-0007', makeConfig()) };
}

const reload = (dev: { image: Uint8Array }) => EepromImage.load(new MemoryEepromDevice(dev.image), FILE);

function expectCode(fn: () => unknown, code: string, ...mentions: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isLifelineError(e), `expected a coded error, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const m of mentions) assert.match(e.message, m);
    return true;
  });
}

/** Runs `op` on a copy of `base`, tearing write number w after b bytes, for every w and every b (0..64). */
function tearEverywhere(base: Uint8Array, op: (img: EepromImage) => void, check: (after: EepromImage, dev: MemoryEepromDevice, w: number, b: number) => void): number {
  const counter = new TearingEepromDevice(base, { atWrite: Number.MAX_SAFE_INTEGER, atByte: 0 });
  op(EepromImage.load(counter));
  let cases = 0;
  for (let w = 0; w < counter.writes; w++) {
    for (let b = 0; b <= EEPROM_PAGE; b++) {
      const dev = new TearingEepromDevice(base, { atWrite: w, atByte: b });
      assert.throws(() => op(EepromImage.load(dev)), TornWriteError);
      const booted = new MemoryEepromDevice(dev.image);
      check(EepromImage.load(booted, FILE), booted, w, b);
      cases++;
    }
  }
  return cases;
}

describe('EEPROM test doubles', () => {
  it('TearingEepromDevice stores the torn write’s first bytes, then refuses every write (power is off)', () => {
    const dev = new TearingEepromDevice(8, { atWrite: 1, atByte: 2 });
    dev.write(0, Uint8Array.of(1, 2));
    assert.throws(() => dev.write(4, Uint8Array.of(3, 4, 5)), TornWriteError);
    assert.throws(() => dev.write(0, Uint8Array.of(9)), TornWriteError);
    assert.deepEqual([...dev.read(0, 8)], [1, 2, 0xff, 0xff, 3, 4, 0xff, 0xff]);
    assert.equal(dev.writes, 3);
    assert.equal(dev.torn, true);
  });

  it('MemoryEepromDevice starts blank (0xFF) and refuses access outside the part', () => {
    const dev = new MemoryEepromDevice(4);
    assert.deepEqual([...dev.read(0, 4)], [0xff, 0xff, 0xff, 0xff]);
    expectCode(() => dev.read(2, 3), 'E_EEPROM_IO');
    expectCode(() => dev.write(-1, Uint8Array.of(0)), 'E_EEPROM_IO');
  });
});

describe('EEPROM image (DESIGN §3)', () => {
  describe('format and load', () => {
    it('round-trips serial, configuration and an empty SA directory', () => {
      const { dev, img } = fresh();
      const back = reload(dev);
      assert.equal(back.serial, 'NIC-0007');
      assert.deepEqual(back.config, makeConfig());
      assert.deepEqual(back.sas, { active: null, previous: null, pending: null });
      assert.deepEqual(back.checkpoints(), []);
      assert.deepEqual(back.recoveredRecords, []);
      assert.deepEqual(back.pageWrites, img.pageWrites);
    });

    it('keeps the magic LFLN at offset 0, erases the executed-command ring (69-100), writes the IPMI users record into page 101, the identity record into 117 and leaves the rest erased', () => {
      const { dev } = fresh();
      assert.equal(new TextDecoder().decode(dev.image.subarray(0, 4)), 'LFLN');
      assert.ok(dev.image.subarray(69 * EEPROM_PAGE, 101 * EEPROM_PAGE).every((b) => b === 0xff));
      assert.equal(dev.image[101 * EEPROM_PAGE], 0x07, 'IPMI users record, kind 0x07');
      assert.ok(dev.image.subarray(102 * EEPROM_PAGE, 117 * EEPROM_PAGE).every((b) => b === 0xff));
      assert.equal(dev.image[117 * EEPROM_PAGE], 0x08, 'identity record, kind 0x08');
      assert.ok(dev.image.subarray(118 * EEPROM_PAGE).every((b) => b === 0xff));
    });

    it('a trust anchor of kind none reads back as 32 zero bytes; ed25519 keys are 32 bytes', () => {
      const dev = new MemoryEepromDevice(EEPROM_SIZE);
      const c: NicConfig = { ...makeConfig(''), securityPolicy: 'none', trustAnchor: { kind: 'none', key: new Uint8Array(0) } };
      EepromImage.format(dev, 'x', c);
      assert.deepEqual(reload(dev).config.trustAnchor, { kind: 'none', key: new Uint8Array(32) });
      assert.throws(() => EepromImage.format(dev, 'x', { ...c, trustAnchor: { kind: 'ed25519', key: new Uint8Array(31) } }), /32-byte/);
    });

    it('reformatting a used part does not bring back its old records', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(5));
      img.writeConfig(makeConfig('old'));
      img.writeCheckpoint({ lastAuthenticated: 0, entries: [] });
      const again = EepromImage.format(dev, 'NIC-0008', makeConfig('new'));
      const back = reload(dev);
      assert.equal(back.serial, 'NIC-0008');
      assert.equal(back.config.clusterPolicy, 'new');
      assert.deepEqual(back.sas, { active: null, previous: null, pending: null });
      assert.equal(back.lastAuthenticated, 0);
      assert.deepEqual(back.pageWrites, again.pageWrites);
    });

    it('rejects bad arguments with coded errors and writes nothing', () => {
      const dev = new MemoryEepromDevice(EEPROM_SIZE);
      expectCode(() => EepromImage.format(dev, 'a-serial-that-is-too-long', makeConfig()), 'E_USAGE', /serial/);
      expectCode(() => EepromImage.format(dev, 'x', { ...makeConfig(), allowedClearCommands: 16 }), 'E_USAGE', /allowedClearCommands/);
      expectCode(() => EepromImage.format(dev, 'x', makeConfig('x'.repeat(1025))), 'E_USAGE', /1024/);
      expectCode(() => EepromImage.format(new MemoryEepromDevice(4096), 'x', makeConfig()), 'E_EEPROM_SIZE');
      assert.ok(dev.image.every((b) => b === 0xff));
    });
  });

  describe('every record kind survives a restart', () => {
    it('configuration: the newest of the two copies wins', () => {
      const { dev, img } = fresh();
      img.writeConfig({ ...makeConfig('second'), securityPolicy: 'esp+ah', trustAnchor: { kind: 'ed25519', key: bytes(32, 3) } });
      img.writeConfig(makeConfig(MAX_POLICY));
      const back = reload(dev);
      assert.deepEqual(back.config, makeConfig(MAX_POLICY));
      assert.deepEqual(back.pageWrites, img.pageWrites);
    });

    it('SA records and directory: active, previous and an implied pending', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(1, 'esp+ah'), { outReserved: 16384n, inReserved: 0n });
      img.commitPending(0);
      img.writePending(makeSa(2));
      img.commitPending(1);
      img.writePending(makeSa(3));
      const back = reload(dev);
      assert.deepEqual(back.sas, { active: makeSa(2), previous: makeSa(1, 'esp+ah'), pending: makeSa(3) });
      assert.equal(back.nextGeneration(), 4);
      assert.deepEqual(back.pageWrites, img.pageWrites);
    });

    it('a discarded pending SA stays discarded and its generation is not reused', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(1));
      img.commitPending(0);
      img.writePending(makeSa(2));
      img.discardPending();
      const back = reload(dev);
      assert.deepEqual(back.sas, { active: makeSa(1), previous: null, pending: null });
      expectCode(() => back.writePending(makeSa(2)), 'E_USAGE', /next is 3/);
    });

    it('sequence checkpoints: the newest of the ring, else the SA record’s initial reservation', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(1), { outReserved: 100n, inReserved: 0n });
      img.commitPending(0);
      img.writePending(makeSa(2), { outReserved: 200n, inReserved: 7n });
      img.commitPending(1);
      for (let i = 1n; i <= 11n; i++) img.writeCheckpoint({ lastAuthenticated: 1, entries: [{ generation: 1, outReserved: 1000n * i, inReserved: 2n ** 40n * i }] });
      const back = reload(dev);
      assert.deepEqual(back.checkpoints(), [
        { generation: 2, outReserved: 200n, inReserved: 7n },
        { generation: 1, outReserved: 11000n, inReserved: 2n ** 40n * 11n },
      ]);
      assert.equal(back.lastAuthenticated, 1);
      assert.deepEqual(back.pageWrites, img.pageWrites);
    });
  });

  describe('sync epochs in the checkpoint', () => {
    it('the live span rides in the epoch words and survives a reload: epochs below the live floor had ended (issue 17, seed 6799)', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(1), { outReserved: 100n, inReserved: 0n });
      img.commitPending(0);
      const cp = { lastAuthenticated: 1, entries: [{ generation: 1, outReserved: 1000n, inReserved: 2n ** 40n }] };
      img.writeCheckpoint({ ...cp, syncEpoch: 0x3ffffff0, epochFloor: 0x3fffffe0, liveFloor: 0x3fffffe5 });
      let back = reload(dev);
      assert.deepEqual([back.syncEpoch, back.epochFloor, back.liveFloor], [0x3ffffff0, 0x3fffffe0, 0x3fffffe5]);
      assert.deepEqual(back.checkpoints().find((c) => c.generation === 1), cp.entries[0], 'the entries are unchanged');
      // A checkpoint without a new epoch keeps the span (epochs only end meanwhile); a new epoch without one: unknown.
      img.writeCheckpoint(cp);
      assert.equal(reload(dev).liveFloor, 0x3fffffe5);
      img.writeCheckpoint({ ...cp, syncEpoch: 0x3ffffff1 });
      assert.equal(reload(dev).liveFloor, 0, 'a new epoch with no live floor given: every epoch may have been live');
      // 15 or more below: that far or farther, known only as "may have been live".
      img.writeCheckpoint({ ...cp, syncEpoch: 0x3ffffff2, liveFloor: 7 });
      assert.equal(reload(dev).liveFloor, 0);
      img.writeCheckpoint({ ...cp, syncEpoch: 0x3ffffff3, liveFloor: 0x3ffffff3 });
      back = reload(dev);
      assert.deepEqual([back.syncEpoch, back.epochFloor, back.liveFloor], [0x3ffffff3, 0x3fffffe0, 0x3ffffff3]);
      expectCode(() => img.writeCheckpoint({ ...cp, syncEpoch: 0x3ffffff4, liveFloor: 0x3ffffff5 }), 'E_USAGE', /live floor/);
      expectCode(() => img.writeCheckpoint({ ...cp, syncEpoch: 0x40000000 }), 'E_USAGE', /sync epoch/);
    });
  });

  describe('page writes (24C256 endurance)', () => {
    it('an SA record is 2 pages (3 under esp+ah); commit and discard are 1 directory page each; a refresh is 3 (4)', () => {
      const { dev, img } = fresh();
      const w0 = img.pageWrites.byRegion;
      img.writePending(makeSa(1));
      img.commitPending(0);
      const w1 = img.pageWrites.byRegion;
      assert.equal(w1.sa - w0.sa, 2);
      assert.equal(w1.directory - w0.directory, 1);
      const before = img.pageWrites.total;
      img.writePending(makeSa(2));
      img.commitPending(1);
      assert.equal(img.pageWrites.total - before, 3);
      img.writePending(makeSa(3));
      img.discardPending();
      assert.equal(img.pageWrites.total - before, 6);
      const ah = img.pageWrites.total;
      img.writePending(makeSa(4, 'esp+ah'));
      img.commitPending(2);
      assert.equal(img.pageWrites.total - ah, 4);
      assert.deepEqual(reload(dev).sas.active, makeSa(4, 'esp+ah'));
    });

    it('a checkpoint is 1 page; a 1 KiB cluster policy is 17', () => {
      const { img } = fresh();
      let t = img.pageWrites.total;
      img.writeCheckpoint({ lastAuthenticated: 0, entries: [] });
      assert.equal(img.pageWrites.total - t, 1);
      t = img.pageWrites.total;
      img.writeConfig(makeConfig(MAX_POLICY));
      assert.equal(img.pageWrites.total - t, 17);
    });
  });

  describe('power lost mid-write: boot takes the last good state', () => {
    it('an SA refresh (write pending, commit) torn at every byte of every write -> old or new committed SA, never a mix', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(1));
      img.commitPending(0);
      const base = dev.image.slice();
      let olds = 0;
      const cases = tearEverywhere(base, (i) => { i.writePending(makeSa(2)); i.commitPending(1); }, (after, booted, w, b) => {
        const { active, previous, pending } = after.sas;
        if (active?.generation === 1) {
          olds++;
          assert.deepEqual(active, makeSa(1), `tear ${w}/${b}`);
          assert.equal(previous, null);
          // The new SA is whole or absent, and the refresh can simply be run again.
          if (pending) assert.deepEqual(pending, makeSa(2));
          const gen = after.nextGeneration();
          after.writePending(makeSa(gen));
          after.commitPending(1);
          assert.deepEqual(reload(booted).sas.active, makeSa(gen));
        } else {
          assert.deepEqual(after.sas, { active: makeSa(2), previous: makeSa(1), pending: null }, `tear ${w}/${b}`);
        }
      });
      assert.equal(cases, 3 * 65); // 2 SA pages (policy esp) + 1 directory page
      assert.ok(olds > 0 && olds < cases);
    });

    it('an esp+ah refresh (3-page SA record) torn at every byte of every write -> old or new committed SA', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(1, 'esp+ah'));
      img.commitPending(0);
      const cases = tearEverywhere(dev.image.slice(), (i) => { i.writePending(makeSa(2, 'esp+ah')); i.commitPending(1); }, (after, _b, w, b) => {
        const { active, previous } = after.sas;
        if (active?.generation === 1) assert.deepEqual(active, makeSa(1, 'esp+ah'), `tear ${w}/${b}`);
        else assert.deepEqual({ active, previous }, { active: makeSa(2, 'esp+ah'), previous: makeSa(1, 'esp+ah') }, `tear ${w}/${b}`);
      });
      assert.equal(cases, 4 * 65);
    });

    it('a discard torn at every byte -> pending still there, or gone', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(1));
      img.commitPending(0);
      img.writePending(makeSa(2));
      tearEverywhere(dev.image.slice(), (i) => i.discardPending(), (after) => {
        assert.deepEqual(after.sas.active, makeSa(1));
        assert.ok(after.sas.pending === null || after.sas.pending.generation === 2);
      });
    });

    it('a checkpoint torn at every byte -> the previous checkpoint or the new one', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(1));
      img.commitPending(0);
      const old = { generation: 1, outReserved: 16384n, inReserved: 32768n };
      const neu = { generation: 1, outReserved: 32768n, inReserved: 49152n };
      img.writeCheckpoint({ lastAuthenticated: 1, entries: [old] });
      tearEverywhere(dev.image.slice(), (i) => i.writeCheckpoint({ lastAuthenticated: 1, entries: [neu] }), (after) => {
        const [cp] = after.checkpoints();
        assert.ok((cp.outReserved === old.outReserved && cp.inReserved === old.inReserved) || (cp.outReserved === neu.outReserved && cp.inReserved === neu.inReserved));
      });
    });

    it('a configuration write torn at every byte of all 17 pages -> the old or the new configuration', () => {
      const { dev, img } = fresh();
      img.writeConfig(makeConfig('small'));
      let recovered = 0;
      const cases = tearEverywhere(dev.image.slice(), (i) => i.writeConfig({ ...makeConfig(MAX_POLICY), clearManagement: false }), (after) => {
        const c = after.config;
        if (c.clusterPolicy === 'small') assert.deepEqual(c, makeConfig('small'));
        else assert.deepEqual(c, { ...makeConfig(MAX_POLICY), clearManagement: false });
        if (after.recoveredRecords.length > 0) recovered++;
      });
      assert.equal(cases, 17 * 65);
      assert.ok(recovered > 0, 'torn copies are reported in recoveredRecords');
    });

    it('a torn format never loads as a half-made image', () => {
      const used = fresh();
      used.img.writePending(makeSa(1));
      used.img.commitPending(0);
      const base = used.dev.image.slice();
      const counter = new TearingEepromDevice(base, { atWrite: Number.MAX_SAFE_INTEGER, atByte: 0 });
      EepromImage.format(counter, 'NEW', makeConfig('new'));
      for (let w = 0; w < counter.writes; w++) {
        for (const b of [0, 1, 40, 64]) {
          const dev = new TearingEepromDevice(base, { atWrite: w, atByte: b });
          assert.throws(() => EepromImage.format(dev, 'NEW', makeConfig('new')), TornWriteError);
          try {
            const back = reload(dev);
            if (w === 0 && b === 0) {
              assert.equal(back.serial, 'NIC-0007', 'nothing written yet: the old image, whole');
              assert.deepEqual(back.sas.active, makeSa(1));
            } else {
              assert.equal(w, counter.writes - 1, 'only a complete header record may load');
              assert.equal(back.serial, 'NEW');
              assert.equal(back.sas.active, null);
            }
          } catch (e) {
            if (!isLifelineError(e)) throw e;
            assert.match(e.code, /E_EEPROM_FOREIGN|E_EEPROM_CRC/);
          }
        }
      }
    });
  });

  describe('corrupt and foreign files are reported, never reset', () => {
    it('a flipped header byte -> E_EEPROM_CRC naming the file and the header record', () => {
      const { dev } = fresh();
      dev.image[20] ^= 0x01;
      expectCode(() => reload(dev), 'E_EEPROM_CRC', /nic-0007\.eeprom/, /header record \(page 0/);
    });

    it('a corrupt active SA record -> E_EEPROM_CRC naming its slot', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(1));
      img.commitPending(0);
      const slotStart = 11 * EEPROM_PAGE; // the first spare slot is slot 0
      dev.image[slotStart + 100] ^= 0x80;
      expectCode(() => reload(dev), 'E_EEPROM_CRC', /nic-0007\.eeprom/, /SA slot 0 \(pages 11-13\), the active SA \(generation 1\)/);
    });

    it('both configuration copies bad -> E_EEPROM_CRC naming the configuration record', () => {
      const { dev, img } = fresh();
      img.writeConfig(makeConfig('two'));
      dev.image[35 * EEPROM_PAGE + 30] ^= 1;
      dev.image[52 * EEPROM_PAGE + 30] ^= 1;
      expectCode(() => reload(dev), 'E_EEPROM_CRC', /configuration record \(both copies\)/, /copy A/, /copy B/);
    });

    it('one bad directory copy falls back to the other and says so', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(1));
      img.commitPending(0);
      dev.image[2 * EEPROM_PAGE + 9] ^= 1; // the newer copy (B)
      const back = reload(dev);
      assert.equal(back.sas.active, null);
      assert.deepEqual(back.sas.pending, makeSa(1));
      assert.match(back.recoveredRecords.join('\n'), /SA directory copy B \(page 2\): CRC-32/);
    });

    it('a newer directory copy gone bad after the NIC used it (a checkpoint names its SA) -> E_EEPROM_CRC, no silent fallback', () => {
      const { dev, img } = fresh();
      img.writePending(makeSa(1));
      img.commitPending(0);
      img.writeCheckpoint({ lastAuthenticated: 1, entries: [{ generation: 1, outReserved: 16384n, inReserved: 16384n }] });
      dev.image[2 * EEPROM_PAGE + 9] ^= 1; // copy B, which made generation 1 active
      expectCode(() => reload(dev), 'E_EEPROM_CRC', /nic-0007\.eeprom/, /SA directory copy B \(page 2\)/, /names SA generation 1/);
    });

    describe('sequence checkpoints: only the page of the next generation may be unreadable', () => {
      /** Pages 3-10 hold the ring; generation g is in page 3 + g mod 8. */
      const page = (g: number) => (3 + (g % 8)) * EEPROM_PAGE;
      function used(checkpoints: number) {
        const { dev, img } = fresh();
        img.writePending(makeSa(1));
        img.commitPending(0);
        for (let g = 1; g <= checkpoints; g++) img.writeCheckpoint({ lastAuthenticated: 1, entries: [{ generation: 1, outReserved: 1000n * BigInt(g), inReserved: 2000n * BigInt(g) }] });
        return dev;
      }

      it('the newest page unreadable or zeroed -> the one before, flagged (a torn write or a checkpoint gone bad after use); erased too once the ring went round', () => {
        const damage: Record<string, (img: Uint8Array, at: number) => void> = {
          'a flipped bit': (img, at) => (img[at + 12] ^= 0x40),
          'a zeroed frame': (img, at) => img.fill(0, at, at + 8),
          'an erased page': (img, at) => img.fill(0xff, at, at + EEPROM_PAGE),
        };
        for (const [what, spoil] of Object.entries(damage)) {
          for (const n of [1, 5, 8, 13]) {
            const dev = used(n);
            assert.equal(reload(dev).newestCheckpointMayBeLost, false, `${n} checkpoints, intact`);
            spoil(dev.image, page(n));
            const back = reload(dev);
            // An erased page reads as never written until the ring has gone round (eeprom-image.ts, load()).
            assert.equal(back.newestCheckpointMayBeLost, what !== 'an erased page' || n > 8, `${what}, ${n} checkpoints`);
            assert.deepEqual(back.checkpoints(), n === 1 ? [{ generation: 1, outReserved: 0n, inReserved: 0n }] : [{ generation: 1, outReserved: 1000n * BigInt(n - 1), inReserved: 2000n * BigInt(n - 1) }]);
            if (what !== 'an erased page') assert.match(back.recoveredRecords.join('\n'), new RegExp(`sequence checkpoint \\(page ${3 + (n % 8)}\\): .*using generation ${n - 1}`));
            const booted = new MemoryEepromDevice(dev.image);
            EepromImage.load(booted, FILE).writeCheckpoint({ lastAuthenticated: 1, entries: [{ generation: 1, outReserved: 99_000n, inReserved: 99_000n }] });
            assert.equal(reload(booted).newestCheckpointMayBeLost, false, `${what}, ${n} checkpoints: the next checkpoint rewrites the page`);
          }
        }
      });

      it('any other unreadable, blank or misplaced page -> E_EEPROM_CRC naming it', () => {
        const dev = used(13); // generations 6..13 in the ring, 13 in page 8
        const older = dev.image.slice();
        older[page(9) + 12] ^= 1; // generation 9: not the page a torn write could hit
        expectCode(() => reload({ image: older }), 'E_EEPROM_CRC', /sequence checkpoint \(page 4\)/, /generation 9 belongs there/);
        const two = dev.image.slice();
        two[page(13) + 12] ^= 1; // the newest ...
        two[page(12) + 12] ^= 1; // ... and the one before: no single power loss does that
        expectCode(() => reload({ image: two }), 'E_EEPROM_CRC', /sequence checkpoint \(page 8\)/);
        const blank = dev.image.slice();
        blank.fill(0xff, page(10), page(10) + EEPROM_PAGE);
        expectCode(() => reload({ image: blank }), 'E_EEPROM_CRC', /sequence checkpoint \(page 5\)/, /erased; generation 10 belongs there/);
        const moved = dev.image.slice();
        moved.copyWithin(page(7), page(13), page(13) + EEPROM_PAGE); // generation 13 also in page 10 (a good CRC, the wrong place)
        expectCode(() => reload({ image: moved }), 'E_EEPROM_CRC', /sequence checkpoint \(page 10\)/, /generation 13; generation 7 belongs there/);
        const early = used(3); // pages 4-6 written, the rest blank
        early.image[page(6) + 2] ^= 1; // a page never written holds garbage
        expectCode(() => reload(early), 'E_EEPROM_CRC', /sequence checkpoint \(page 9\)/, /no checkpoint was written there/);
        const halfErased = used(3);
        halfErased.image[page(6) + 30] = 0; // an erased frame over a body that is not erased
        expectCode(() => reload(halfErased), 'E_EEPROM_CRC', /sequence checkpoint \(page 9\)/, /a blank frame over a non-blank body/);
      });
    });

    it('random bytes or a PNG -> E_EEPROM_FOREIGN; a blank part says it is blank', () => {
      let x = 0x9e3779b9;
      const random = new Uint8Array(EEPROM_SIZE).map(() => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), x & 0xff));
      expectCode(() => EepromImage.load(new MemoryEepromDevice(random), FILE), 'E_EEPROM_FOREIGN', /nic-0007\.eeprom/, /LFLN/);
      const png = new Uint8Array(5000);
      png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      expectCode(() => EepromImage.load(new MemoryEepromDevice(png), FILE), 'E_EEPROM_FOREIGN', /PNG/);
      expectCode(() => EepromImage.load(new MemoryEepromDevice(EEPROM_SIZE), FILE), 'E_EEPROM_FOREIGN', /blank/);
      expectCode(() => EepromImage.load(new MemoryEepromDevice(2), FILE), 'E_EEPROM_FOREIGN');
    });

    it('a truncated or padded image -> E_EEPROM_SIZE', () => {
      const { dev } = fresh();
      expectCode(() => EepromImage.load(new MemoryEepromDevice(dev.image.subarray(0, 16384)), FILE), 'E_EEPROM_SIZE', /16384 bytes/, /32768/);
      const padded = new Uint8Array(EEPROM_SIZE + 1);
      padded.set(dev.image);
      expectCode(() => EepromImage.load(new MemoryEepromDevice(padded), FILE), 'E_EEPROM_SIZE');
    });

    it('a record of a later format version -> E_VERSION naming the record', () => {
      const { dev } = fresh();
      dev.image[5] = 2; // header version byte, CRC recomputed below
      const view = new DataView(dev.image.buffer);
      const len = 4 + 8 + 23;
      let c = 0xffffffff;
      for (let i = 0; i < len; i++) {
        c ^= dev.image[i];
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      }
      view.setUint32(len, (c ^ 0xffffffff) >>> 0);
      expectCode(() => reload(dev), 'E_VERSION', /header/, /version 2/);
    });
  });

  describe('misuse', () => {
    it('commit or discard without a pending SA -> E_NO_SA; unknown previous -> E_USAGE', () => {
      const { img } = fresh();
      expectCode(() => img.commitPending(0), 'E_NO_SA');
      expectCode(() => img.discardPending(), 'E_NO_SA');
      img.writePending(makeSa(1));
      expectCode(() => img.commitPending(7), 'E_USAGE');
    });

    it('checkpoints name only held SAs; SPIs exclude 0 and the heartbeat SPI', () => {
      const { img } = fresh();
      expectCode(() => img.writeCheckpoint({ lastAuthenticated: 0, entries: [{ generation: 1, outReserved: 1n, inReserved: 1n }] }), 'E_USAGE');
      expectCode(() => img.writePending({ ...makeSa(1), toNic: { ...makeSa(1).toNic, spi: 0xffffffff } }), 'E_USAGE', /heartbeat/);
      expectCode(() => img.writePending({ ...makeSa(1), policy: 'esp+ah' }), 'E_USAGE');
    });
  });
});
