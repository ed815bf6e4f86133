/**
 * A NIC whose EEPROM file can no longer be written stays up but must drop every secure packet (its sequence
 * checkpoint cannot be stored): the emulator says so in its log, naming the file and the error, the first time
 * and then at most once a minute.
 */
import assert from 'node:assert/strict';
import { mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../support/lab.js';

describe('e2e: an EEPROM file that cannot be written', function () {
  this.timeout(30000);
  let lab: Lab;
  before(async () => {
    lab = new Lab('eeprom-unwritable');
    await lab.startEmulator(['--nics', '1']);
    await lab.station(['sa', 'manual', 'nic-1']);
  });
  after(async () => lab?.cleanup());

  it('secure packets are dropped as eeprom_io and one error line names the file and the error', async () => {
    const file = join(lab.dir, 'nics', 'nic-1.eeprom');
    // A directory where the file was: writes fail even for root (a read-only mode would not stop root).
    renameSync(file, `${file}.moved`);
    mkdirSync(file);
    for (let i = 0; i < 3; i++) {
      const r = await lab.run(['ping', 'nic-1', '--timeout', '300']);
      assert.notEqual(r.code, 0, 'no answer without a checkpoint');
    }
    const s = await lab.nic('nic-1');
    assert.equal(s.state, 'running');
    assert.ok(s.counters.dropped.eeprom_io >= 3, JSON.stringify(s.counters.dropped));
    const lines = lab.emulatorStderr.split('\n').filter((l) => l.includes('EEPROM file cannot be written'));
    assert.equal(lines.length, 1, `logged once (rate-limited):\n${lines.join('\n')}`);
    assert.ok(lines[0].includes(`file=${file}`), lines[0]);
    assert.match(lines[0], /error=cannot (open|write) EEPROM file .*EISDIR/);
  });
});
