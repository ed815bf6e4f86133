/**
 * Issue 3, acceptance 6 (last part) and the command log: the station's SQLite store never holds a key in
 * clear. Every ESP key, IKE SK_e key and the PSK is wrapped with AES-GCM under the cluster key, so a search
 * of the raw database files (main file, -wal and -shm, while a daemon has them open) for the key bytes, in
 * binary and as hex text, finds nothing. And the per-NIC command log is a MAC'd hash chain: `audit` says
 * intact after real commands, and after one row is edited directly in the SQLite file it exits 1 and names
 * that row as the first bad entry.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Lab } from '../support/lab.js';
import { entryHash } from '../../mgmt-station/store/command-log.js';
import { LOG_COLUMNS, logFromRow } from '../../mgmt-station/store/row-codec.js';
import { StationDaemon, stopAllStations, storeFile, withStoreDb, writePskFile } from '../support/station-daemon.js';

/** The secrets in a `keys --wireshark` esp_sa file (0x-hex key||salt) and a `--ikev2` file (SK_ei, SK_er). */
function exportedKeys(espText: string, ikeText: string): Buffer[] {
  const keys: Buffer[] = [];
  for (const l of espText.split('\n')) {
    const m = /^"IPv4","[^"]*","[^"]*","0x[0-9a-f]+","[^"]*","0x([0-9a-f]+)"/.exec(l);
    if (m) keys.push(Buffer.from(m[1], 'hex'));
  }
  for (const l of ikeText.split('\n').filter(Boolean)) {
    const [, , skEi, skEr] = l.split(',');
    keys.push(Buffer.from(skEi, 'hex'), Buffer.from(skEr, 'hex'));
  }
  return keys;
}

/** Where `secret` shows up in `file`: as bytes (whole, or its first 16 = the AES key), or as hex text. */
function leaks(file: Buffer, secret: Buffer): string[] {
  const found: string[] = [];
  const probes: [string, Buffer][] = [
    ['bytes', secret],
    ['first 16 bytes', secret.subarray(0, 16)],
    ['lower-case hex', Buffer.from(secret.toString('hex'))],
    ['upper-case hex', Buffer.from(secret.toString('hex').toUpperCase())],
    ['base64', Buffer.from(secret.toString('base64').slice(0, 20))],
  ];
  for (const [how, p] of probes) if (file.includes(p)) found.push(how);
  return found;
}

describe('e2e station: the SQLite store holds no key in clear', function () {
  this.timeout(30000);
  let lab: Lab;
  let psk: Buffer;
  let keys: Buffer[] = [];
  let espText = '';

  before(async () => {
    lab = new Lab('station-store-keys');
    await lab.startEmulator(['--nics', '2']);
    const p = writePskFile(lab);
    psk = p.psk;
    await lab.station(['enroll', 'nic-1', '--psk-file', p.file]);
    await lab.station(['enroll', 'nic-2', '--psk-file', writePskFile(lab, 'psk2.hex').file]);
    // A daemon keeps the database open (so the -wal and -shm files exist) and rekeys nic-1 once more.
    await StationDaemon.start(lab, ['--refresh-interval', '3600']);
    await lab.station(['refresh', 'nic-1']);
    await lab.station(['power-up', 'nic-1']);
    const esp = join(lab.dir, 'esp_sa');
    const ike = join(lab.dir, 'ikev2_keys');
    await lab.station(['keys', '--wireshark', esp, '--ikev2', ike]);
    espText = readFileSync(esp, 'utf8');
    keys = exportedKeys(espText, readFileSync(ike, 'utf8'));
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  it('the exported keys are what the search looks for (control: found in the export itself)', () => {
    assert.ok(keys.length >= 10, `keys exported: ${keys.length} (2 NICs x 2 directions, 2 SAs of nic-1, IKE SK_e pairs)`);
    for (const k of keys.slice(0, 4)) assert.deepEqual(leaks(Buffer.from(espText), k), ['lower-case hex']);
  });

  it('no database file (main, -wal, -shm) contains an SA key, an IKE key or the PSK, in binary or as text', () => {
    const db = storeFile(lab);
    const files = readdirSync(dirname(db)).filter((f) => f.startsWith(basename(db))).map((f) => join(dirname(db), f));
    assert.ok(files.some((f) => f.endsWith('-wal')), `a -wal file while the daemon runs: ${files.join(' ')}`);
    const found: string[] = [];
    for (const f of files) {
      const raw = readFileSync(f);
      keys.forEach((k, i) => leaks(raw, k).forEach((how) => found.push(`${basename(f)}: key #${i} as ${how}`)));
      leaks(raw, psk).forEach((how) => found.push(`${basename(f)}: the PSK as ${how}`));
    }
    assert.deepEqual(found, []);
  });

  it('the key columns hold wrapped blobs, not keys', () => {
    const rows = withStoreDb(lab, (d) => d.prepare('SELECT to_nic_enc_key AS k FROM sas UNION ALL SELECT from_nic_enc_key FROM sas UNION ALL SELECT psk FROM nics').all()) as { k: Buffer }[];
    assert.ok(rows.length >= 6);
    for (const r of rows) {
      assert.ok(Buffer.isBuffer(r.k));
      assert.ok(r.k.length >= 20 + 16, `a wrapped key carries at least a GCM tag on top of the key (got ${r.k.length} bytes)`);
    }
  });
});

describe('e2e station: audit of the hash-chained command log', function () {
  this.timeout(30000);
  let lab: Lab;

  before(async () => {
    lab = new Lab('station-audit');
    await lab.startEmulator(['--nics', '1']);
    await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file]);
  });
  after(async () => {
    await lab?.cleanup();
  });

  it('audit says intact after commands (exit 0)', async () => {
    for (const verb of ['power-up', 'reset', 'power-up', 'power-cycle']) await lab.station([verb, 'nic-1']);
    const r = await lab.run(['audit', 'nic-1']);
    assert.equal(r.code, 0, r.stderr);
    const json = await lab.station(['audit', 'nic-1']);
    assert.equal(json.ok, true);
    assert.ok(json.entries >= 4, `entries: ${json.entries}`);
    assert.equal(json.head.index, json.entries);
    assert.equal(json.firstBadIndex, null);
    assert.match(r.stdout, new RegExp(`^nic-1: command log intact \\(${json.entries} entries: \\d+ commands and their outcomes; head entry ${json.entries}\\)$`, 'm'));
  });

  it('after one row is edited in the SQLite file, audit exits 1 and names it as the first bad entry', async () => {
    const changed = withStoreDb(lab, (db) => db.prepare("UPDATE command_log SET command = 'power-down' WHERE nic = 'nic-1' AND idx = 2").run().changes, false);
    assert.equal(changed, 1);
    const r = await lab.run(['audit', 'nic-1']);
    assert.equal(r.code, 1, `exit 1 expected; stdout: ${r.stdout} stderr: ${r.stderr}`);
    assert.match(r.stdout, /^nic-1: command log TAMPERED: first bad entry 2: /m);
    const json = await lab.run(['audit', 'nic-1', '--json']);
    assert.equal(json.code, 1);
    assert.equal(json.json?.ok, false);
    assert.equal(json.json?.firstBadIndex, 2);
  });

  it('a row rewritten with its hash recomputed is still caught: its MAC needs the cluster key', async () => {
    withStoreDb(lab, (db) => db.prepare("UPDATE command_log SET command = 'power-up' WHERE nic = 'nic-1' AND idx = 2").run(), false);
    assert.equal((await lab.run(['audit', 'nic-1'])).code, 0, 'putting the field back restores the chain');
    // The attacker knows the chain rule (command-log.ts) and rewrites row 3 consistently, hash included.
    withStoreDb(lab, (db) => {
      const row = logFromRow(db.prepare(`SELECT ${LOG_COLUMNS} FROM command_log WHERE nic = 'nic-1' AND idx = 3`).get() as Record<string, unknown>);
      const forged = { ...row, command: row.command === 'reset' ? 'power-down' : 'reset' };
      db.prepare('UPDATE command_log SET command = ?, hash = ? WHERE nic = ? AND idx = 3').run(forged.command, entryHash(row.prevHash, forged), 'nic-1');
    }, false);
    const r = await lab.run(['audit', 'nic-1', '--json']);
    assert.equal(r.code, 1);
    assert.equal(r.json?.firstBadIndex, 3);
    assert.match(r.json?.problem, /not sealed/);
  });
});
