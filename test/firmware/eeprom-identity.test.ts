/**
 * The EEPROM's identity (issue 16, fleets across emulators): the serial is the part's own value (header), the NIC
 * id the emulator gave it is in the identity record (pages 117-118), written once at format before the header.
 * Images written before that record existed (fixtures/eeprom/nic-3-before-id-prefix.hex, made by the release
 * before it) are read with their serial as their id, and nothing is written to them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { MemoryEepromDevice, TearingEepromDevice, TornWriteError } from '../../firmware/eeprom-device.js';
import { EEPROM_PAGE, EEPROM_SIZE, EepromImage, type NicConfig } from '../../firmware/eeprom-image.js';
import { newSerial, systemUuidText } from '../../firmware/system-guid.js';
import { NicMachine } from '../../firmware/nic-machine.js';
import { isLifelineError } from '../../common/errors.js';

/**
 * An image kept as text (fixtures/eeprom/*.hex: `size N`, then `OFFSET HEX` for each page that is not erased; every
 * other byte 0xff), so the repository tracks no runtime .eeprom file.
 */
function fromPageListing(text: string): Uint8Array {
  let out: Uint8Array | null = null;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [a, b] = line.split(' ');
    if (a === 'size') out = new Uint8Array(Number(b)).fill(0xff);
    else out!.set(Buffer.from(b, 'hex'), Number(a));
  }
  return out!;
}

function fixture(name: string): Uint8Array {
  for (let d = import.meta.dirname; dirname(d) !== d; d = dirname(d)) {
    const f = join(d, 'fixtures', 'eeprom', name);
    if (existsSync(f)) return fromPageListing(readFileSync(f, 'utf8'));
  }
  throw new Error(`fixtures/eeprom/${name} not found above ${import.meta.dirname}`);
}

const config = (): NicConfig => ({
  securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'none', key: new Uint8Array(32) }, clusterPolicy: '',
});

function expectCode(fn: () => unknown, code: string, ...mentions: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isLifelineError(e), `expected a coded error, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const m of mentions) assert.match(e.message, m);
    return true;
  });
}

describe('EEPROM identity: serial and NIC id', () => {
  it('a new image keeps its serial and its NIC id apart, and reads both back with the same page-write counts', () => {
    const dev = new MemoryEepromDevice(EEPROM_SIZE);
    const img = EepromImage.format(dev, 'LL0123456789AB', config(), 'test', undefined, 'lab-a-nic-12');
    const back = EepromImage.load(dev, 'test');
    assert.deepEqual([back.serial, back.nicId, back.legacyIdentity], ['LL0123456789AB', 'lab-a-nic-12', false]);
    assert.deepEqual(back.pageWrites, img.pageWrites);
    assert.equal(img.pageWrites.byRegion.header, 4, 'header erase + write, identity erase + write');
  });

  it('takes a NIC id of up to 64 characters (the store\'s limit) and refuses a longer or blank one (E_USAGE)', () => {
    const id = `${'p'.repeat(32)}-nic-100000`.padEnd(64, 'x');
    const dev = new MemoryEepromDevice(EEPROM_SIZE);
    EepromImage.format(dev, 'LL0000000000AA', config(), 'test', undefined, id);
    assert.equal(EepromImage.load(dev).nicId, id);
    expectCode(() => EepromImage.format(new MemoryEepromDevice(EEPROM_SIZE), 'S', config(), 'test', undefined, id + 'y'), 'E_USAGE', /NIC id/);
    expectCode(() => EepromImage.format(new MemoryEepromDevice(EEPROM_SIZE), 'S', config(), 'test', undefined, 'a b'), 'E_USAGE', /NIC id/);
  });

  it('without a NIC id the serial is the id (the simulator and unit tests)', () => {
    const dev = new MemoryEepromDevice(EEPROM_SIZE);
    EepromImage.format(dev, 'nic-1', config());
    const back = EepromImage.load(dev);
    assert.deepEqual([back.serial, back.nicId, back.legacyIdentity], ['nic-1', 'nic-1', false]);
  });

  it('reads an image of the release before (no identity record) with its serial as its id, its SA and counters intact, writing nothing', () => {
    const bytes = fixture('nic-3-before-id-prefix.hex');
    const dev = new MemoryEepromDevice(bytes);
    const img = EepromImage.load(dev, 'nic-3.eeprom');
    assert.deepEqual([img.serial, img.nicId, img.legacyIdentity], ['nic-3', 'nic-3', true]);
    assert.equal(img.sas.active?.generation, 1);
    assert.deepEqual(img.checkpoints(), [{ generation: 1, outReserved: 32768n, inReserved: 32768n }]);
    assert.deepEqual(img.pageWrites.byRegion, { header: 2, config: 3, sa: 10, directory: 4, checkpoint: 9 }, 'as the release before counted them');
    assert.deepEqual(dev.image, bytes, 'loading wrote nothing');
    // Its GUID is the one it had: the UUID of its serial, which was its id.
    assert.equal(systemUuidText(img.serial), systemUuidText('nic-3'));
    // And it goes on working: a refresh is written and read back as before.
    img.writePending({ ...img.sas.active!, generation: 2, toNic: { ...img.sas.active!.toNic, spi: 0x2002 }, fromNic: { ...img.sas.active!.fromNic, spi: 0x4002 } });
    img.commitPending(1);
    const again = EepromImage.load(dev);
    assert.deepEqual([again.sas.active?.generation, again.sas.previous?.generation, again.nicId], [2, 1, 'nic-3']);
  });

  it('a corrupt identity record is E_EEPROM_CRC naming it, never read as an image of the release before', () => {
    const dev = new MemoryEepromDevice(EEPROM_SIZE);
    EepromImage.format(dev, 'LL0123456789AB', config(), 'nic.eeprom', undefined, 'lab-a-nic-1');
    dev.image[117 * EEPROM_PAGE + 10] ^= 0x40;
    expectCode(() => EepromImage.load(dev, 'nic.eeprom'), 'E_EEPROM_CRC', /nic\.eeprom/, /identity record \(pages 117-118\)/);
  });

  it('a format torn at any write leaves no image (no magic; or the header itself torn) or the whole identity', () => {
    let writes = 0;
    EepromImage.format(new TearingEepromDevice(EEPROM_SIZE, { atWrite: 1e9, atByte: 0 }), 'LL0123456789AB', config(), 't', undefined, 'lab-a-nic-1');
    for (;; writes++) {
      const dev = new TearingEepromDevice(EEPROM_SIZE, { atWrite: writes, atByte: 30 });
      try {
        EepromImage.format(dev, 'LL0123456789AB', config(), 't', undefined, 'lab-a-nic-1');
        break;
      } catch (e) {
        assert.ok(e instanceof TornWriteError, String(e));
      }
      const mem = new MemoryEepromDevice(dev.image);
      try {
        const img = EepromImage.load(mem);
        assert.deepEqual([img.serial, img.nicId], ['LL0123456789AB', 'lab-a-nic-1'], `torn at write ${writes}`);
      } catch (e) {
        // Before the header: no magic. In the header write itself (the last): its CRC. Never the identity record.
        const ok = isLifelineError(e) && (e.code === 'E_EEPROM_FOREIGN' || (e.code === 'E_EEPROM_CRC' && /header record/.test(e.message)));
        assert.ok(ok, `torn at write ${writes}: ${String(e)}`);
      }
    }
    assert.ok(writes > 20, `${writes} writes in a format`);
  });

  it('new serials: LL and 12 hex digits, from the randomness given', () => {
    const s = newSerial(() => Uint8Array.of(1, 2, 3, 0xab, 0xcd, 0xef));
    assert.equal(s, 'LL010203ABCDEF');
    assert.ok(s.length <= 16);
  });

  describe('a NIC booting these images (NicMachine)', () => {
    const boot = (id: string, dev: MemoryEepromDevice, fresh: boolean, serial?: string) => {
      const m = new NicMachine({
        id, address: '127.0.0.1', ports: { clear: 623, secure: 664, ike: 500 }, openDevice: () => ({ device: dev, fresh }), deviceName: `${id}.eeprom`,
        initialConfig: config(), initialHostState: 'up', bootDelayMs: 100, random: (n) => new Uint8Array(n).fill(7), newSerial: serial ? () => serial : undefined,
      });
      m.powerOn(1000);
      return m;
    };

    it('a new NIC gets the serial it is given and its id in the identity record; status shows both and the GUID of the serial', () => {
      const dev = new MemoryEepromDevice(EEPROM_SIZE);
      const st = boot('lab-a-nic-1', dev, true, 'LL00000000ABCD').status();
      assert.deepEqual([st.state, st.id, st.serial, st.systemGuid], ['running', 'lab-a-nic-1', 'LL00000000ABCD', systemUuidText('LL00000000ABCD')]);
      assert.equal(EepromImage.load(dev).nicId, 'lab-a-nic-1');
    });

    it('boots an image of the release before as the NIC it was (serial = id, the same GUID), with its SA', () => {
      const st = boot('nic-3', new MemoryEepromDevice(fixture('nic-3-before-id-prefix.hex')), false).status();
      assert.deepEqual([st.state, st.serial, st.systemGuid], ['running', 'nic-3', systemUuidText('nic-3')]);
      assert.equal((st.sa as { active: { generation: number } }).active.generation, 1);
    });

    it("another NIC's image (its identity record names another id) is E_EEPROM_FOREIGN naming both ids and the serial", () => {
      const dev = new MemoryEepromDevice(EEPROM_SIZE);
      EepromImage.format(dev, 'LL00000000ABCD', config(), 'x', undefined, 'lab-a-nic-1');
      const m = boot('lab-a-nic-2', dev, false);
      assert.equal(m.runState, 'failed');
      assert.match(m.error!, /belongs to NIC 'lab-a-nic-1' \(serial LL00000000ABCD\), not lab-a-nic-2/);
      const legacy = boot('nic-4', new MemoryEepromDevice(fixture('nic-3-before-id-prefix.hex')), false);
      assert.match(legacy.error!, /belongs to NIC 'nic-3' \(serial nic-3\), not nic-4/);
    });
  });
});
