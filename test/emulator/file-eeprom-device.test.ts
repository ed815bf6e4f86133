/**
 * nic-emulator/file-eeprom-device.ts against real files in a temporary directory: every file system failure is
 * E_EEPROM_IO naming the file.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileEepromDevice } from '../../nic-emulator/file-eeprom-device.js';
import { LifelineError } from '../../common/errors.js';
import { TornWriteError } from '../../firmware/eeprom-device.js';

describe('FileEepromDevice', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lifeline-file-eeprom-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("a fresh image's first-boot writes go through one descriptor, closed at release() (fleet start-up)", async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const path = join(dir, 'fresh.eeprom');
    const dev = FileEepromDevice.create(path, 32768);
    assert.equal(fds(), before + 1);
    for (let i = 0; i < 20; i++) dev.write(i * 64, new Uint8Array(64).fill(i));
    assert.equal(fds(), before + 1, 'no descriptor per write');
    assert.deepEqual(dev.read(64, 4), Uint8Array.of(1, 1, 1, 1));
    dev.release();
    assert.equal(fds(), before);
    dev.write(0, Uint8Array.of(7)); // after boot: opened for the write, held for this turn of the event loop
    dev.write(64, Uint8Array.of(8));
    assert.equal(fds(), before + 1, 'the writes of one turn share a descriptor');
    assert.equal(dev.read(64, 1)[0], 8, 'and reads go through it');
    await new Promise((r) => setImmediate(r));
    assert.equal(fds(), before, 'closed when the turn ends');
    assert.equal(readFileSync(path)[0], 7);
    assert.equal(readFileSync(path)[64 * 19], 19);
  });

  it('a directory where the EEPROM file should be is E_EEPROM_IO naming the path (not a bare EISDIR)', () => {
    const path = join(dir, 'nic-1.eeprom');
    mkdirSync(path);
    assert.throws(
      () => FileEepromDevice.open(path),
      (e: unknown) => e instanceof LifelineError && e.code === 'E_EEPROM_IO' && e.message.includes(path) && /EISDIR/.test(e.message),
    );
  });

  it('a 0-byte file is E_EEPROM_SIZE "0 bytes (truncated?)", not a blank part', () => {
    const path = join(dir, 'nic-1.eeprom');
    writeFileSync(path, '');
    assert.throws(
      () => FileEepromDevice.open(path),
      (e: unknown) => e instanceof LifelineError && e.code === 'E_EEPROM_SIZE' && e.message.includes(path) && e.message.includes('0 bytes (truncated?)'),
    );
  });

  describe('tearNextWrite(N)', () => {
    const fresh = () => FileEepromDevice.create(join(dir, 'nic-1.eeprom'), 256);
    const data = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

    it('N < the write length: the first N bytes reach the file, the write throws TornWriteError', () => {
      const dev = fresh();
      dev.tearNextWrite(5);
      assert.throws(() => dev.write(64, data), TornWriteError);
      assert.deepEqual([...readFileSync(dev.path).subarray(64, 80)], [...data.subarray(0, 5), ...new Array(11).fill(0xff)]);
    });
    for (const n of [16, 17, 40]) {
      it(`N = ${n} >= the write length (16): the write completes, is not torn; power goes ${n - 16} bytes into the next`, () => {
        const dev = fresh();
        dev.tearNextWrite(n);
        dev.write(64, data);
        assert.deepEqual([...readFileSync(dev.path).subarray(64, 80)], [...data]);
        if (n - 16 >= 16) dev.write(80, data);
        else assert.throws(() => dev.write(80, data), (e: unknown) => e instanceof TornWriteError && e.message.includes(`after ${n - 16} of 16 bytes`));
      });
    }
    for (const bad of [-1, 1.5, NaN]) {
      it(`N = ${bad} is E_USAGE`, () => {
        assert.throws(() => fresh().tearNextWrite(bad), (e: unknown) => e instanceof LifelineError && e.code === 'E_USAGE');
      });
    }
  });
});
