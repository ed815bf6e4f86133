/**
 * Issue 15 "file modes": EEPROM files hold every SA key and the PSK, the store holds wrapped keys and the command
 * log, key exports hold keys in clear. They are 0600 in 0700 data directories, also when they already existed with
 * a wider mode (an older version's 0644 EEPROM files in a 0755 directory, `keys --wireshark` into an existing 0644
 * file). Checked with the umask most machines have (022), which would otherwise give 0644 and 0755.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../support/lab.js';
import { StationDaemon, stopAllStations, storeFile, writePskFile } from '../support/station-daemon.js';

const mode = (p: string) => statSync(p).mode & 0o777;
const octal = (m: number) => '0' + m.toString(8);

describe('e2e: files that hold secrets are 0600 in 0700 directories', function () {
  this.timeout(60000);
  let lab: Lab;
  let umask: number;
  before(async () => {
    umask = process.umask(0o022); // the children inherit it
    lab = new Lab('file-modes');
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
    process.umask(umask);
  });

  const dataDir = () => join(lab.dir, 'nics');

  it('a new data directory is 0700 and its EEPROM files 0600', async () => {
    await lab.startEmulator(['--nics', '2']);
    assert.equal(octal(mode(dataDir())), '0700');
    const files = readdirSync(dataDir());
    assert.deepEqual(files.sort(), ['nic-1.eeprom', 'nic-2.eeprom']);
    for (const f of files) assert.equal(octal(mode(join(dataDir(), f))), '0600', f);
  });

  it('EEPROM files and a data directory left readable (0644, 0755) are narrowed at the next start', async () => {
    await lab.stopEmulator();
    for (const f of readdirSync(dataDir())) chmodSync(join(dataDir(), f), 0o644);
    chmodSync(dataDir(), 0o755);
    await lab.restartEmulator();
    assert.equal(octal(mode(dataDir())), '0700');
    for (const f of readdirSync(dataDir())) assert.equal(octal(mode(join(dataDir(), f))), '0600', f);
    assert.equal((await lab.nic('nic-1')).state, 'running', 'the NIC booted from its narrowed file');
  });

  it('a data directory that holds other files too is left as it is; the EEPROM files in it are 0600', async () => {
    const shared = join(lab.dir, 'shared');
    mkdirSync(shared, { mode: 0o755 });
    chmodSync(shared, 0o755);
    writeFileSync(join(shared, 'README'), 'not ours\n');
    const other = new Lab('file-modes-shared');
    try {
      await other.startEmulator(['--nics', '1', '--data-dir', shared]);
      assert.equal(octal(mode(shared)), '0755');
      assert.equal(octal(mode(join(shared, 'nic-1.eeprom'))), '0600');
    } finally {
      await other.cleanup();
    }
  });

  it('the store made by enroll is 0600 (its -wal and -shm too), the cluster key 0600, a directory made for them 0700', async () => {
    const dir = join(lab.dir, 'station', 'deeper');
    const store = `sqlite:${join(dir, 'station.db')}`;
    const keyFile = join(lab.dir, 'keys', 'cluster.key');
    const r = await lab.run(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file], { store, keyFile, timeoutMs: 30000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(octal(mode(dir)), '0700');
    assert.equal(octal(mode(join(lab.dir, 'station'))), '0700');
    assert.equal(octal(mode(join(lab.dir, 'keys'))), '0700');
    assert.equal(octal(mode(keyFile)), '0600');
    for (const f of ['station.db', 'station.db-wal', 'station.db-shm']) if (existsSync(join(dir, f))) assert.equal(octal(mode(join(dir, f))), '0600', f);
  });

  it('a store file left readable (0644) is narrowed to 0600 by the next station that opens it', async () => {
    assert.equal((await lab.run(['enroll', 'nic-2', '--psk-file', writePskFile(lab, 'psk2.hex').file], { timeoutMs: 30000 })).code, 0);
    const file = storeFile(lab);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o644);
    const r = await lab.run(['list']);
    assert.equal(r.code, 0, r.stderr);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) assert.equal(octal(mode(f)), '0600', f);
  });

  it('keys --wireshark/--ikev2: new files are 0600, and so is an existing 0644 file they replace', async () => {
    const esp = join(lab.dir, 'esp_sa');
    const ike = join(lab.dir, 'ikev2_keys');
    writeFileSync(esp, 'old\n', { mode: 0o644 });
    chmodSync(esp, 0o644);
    const r = await lab.run(['keys', '--wireshark', esp, '--ikev2', ike]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(octal(mode(esp)), '0600');
    assert.equal(octal(mode(ike)), '0600');
    assert.equal(readdirSync(lab.dir).filter((f) => f.endsWith('.tmp')).length, 0, 'no temporary file left');
  });

  it("the daemon's announce file (it holds the API credential) is 0600, also over an existing 0644 one", async () => {
    const d1 = await StationDaemon.start(lab);
    const announce = d1.ready.announce;
    await d1.kill('SIGKILL'); // leaves its file behind
    chmodSync(announce, 0o644);
    const d2 = await StationDaemon.start(lab);
    assert.equal(d2.ready.announce, announce);
    assert.equal(octal(mode(announce)), '0600');
  });
});
