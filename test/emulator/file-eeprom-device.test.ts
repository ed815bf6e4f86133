/**
 * nic-emulator/file-eeprom-device.ts against real files in a temporary directory: every file system failure is
 * E_EEPROM_IO naming the file.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileEepromDevice } from '../../nic-emulator/file-eeprom-device.js';
import { LifelineError } from '../../firmware/errors.js';

describe('FileEepromDevice', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lifeline-file-eeprom-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a directory where the EEPROM file should be is E_EEPROM_IO naming the path (not a bare EISDIR)', () => {
    const path = join(dir, 'nic-1.eeprom');
    mkdirSync(path);
    assert.throws(
      () => FileEepromDevice.open(path),
      (e: unknown) => e instanceof LifelineError && e.code === 'E_EEPROM_IO' && e.message.includes(path) && /EISDIR/.test(e.message),
    );
  });
});
