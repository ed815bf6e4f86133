/**
 * Issue 18, criterion 3: the side-by-side of the two management paths on the same NIC, with the commands of
 * docs/IPMI.md ("What each path gives a passive observer"). One capture holds an ipmitool lanplus session (a weak
 * password) and the secure path's enrolment (IKEv2 with a pre-shared key) and commands (ESP). The observer's script,
 * scripts/offline-guess.ts, recovers the lanplus password from RAKP 1 + RAKP 2 with a small word list, and finds
 * nothing on the secure path a guess could be tested on, the right pre-shared key included; with the keys a
 * participant holds (mgmt-station keys), tshark shows that the AUTH payload was there, inside SK, all along.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Lab, ROOT, isRoot } from '../support/lab.js';
import { Capture, espSaOptions, hasBinary, tsharkFields } from '../support/tshark.js';
import { writePskFile } from '../support/station-daemon.js';
import type { OfflineGuessReport } from '../../scripts/offline-guess.js';

const SCRIPT = resolve(ROOT, 'dist/scripts/offline-guess.js');
/** A small dictionary of default and common BMC passwords (the weak one is in it). */
const WORDS = ['admin', 'password', 'ADMIN', 'changeme', 'root', 'calvin', '123456', 'letmein', 'superuser'];

describe('e2e: side by side, what a passive observer gets from lanplus and from the secure path (issue 18)', function () {
  this.timeout(90_000);
  let lab: Lab;
  let address = '';
  let pcap = '';
  let words = '';
  let psk = '';
  let report: OfflineGuessReport;

  before(async function () {
    if (!isRoot) {
      console.log('      (skipped: the IPMI tools talk to UDP 623 of an address per NIC, which needs root)');
      this.skip();
    }
    for (const t of ['ipmitool', 'tshark']) {
      if (!hasBinary(t)) {
        console.log(`      (skipped: ${t} is not installed; .ci/run installs it)`);
        this.skip();
      }
    }
    lab = new Lab('side-by-side');
    await lab.startEmulator(['--nics', '1', '--ipmi-user', 'admin:calvin']);
    address = lab.ready!.first.replace(/:623$/, '');
    pcap = join(lab.dir, 'side-by-side.pcap');
    const capture = await Capture.start(pcap, `host ${address} and (udp port 623 or udp port 664 or udp port 500)`);
    try {
      for (const suite of ['17', '3']) {
        const r = await lab.exec('ipmitool', ['-I', 'lanplus', '-H', address, '-U', 'admin', '-P', 'calvin', '-C', suite, 'chassis', 'power', 'status'], { env: { HOME: tmpdir() } });
        assert.equal(r.stdout.trim(), 'Chassis Power is on', r.stderr);
      }
      const key = writePskFile(lab);
      psk = key.psk.toString('hex');
      await lab.station(['enroll', 'nic-1', '--psk-file', key.file]);
      await lab.station(['state', 'nic-1']);
      await lab.station(['power-cycle', 'nic-1']);
    } finally {
      await capture.stop();
    }
    // The observer's word list holds the weak password and, to make the point, the NIC's real pre-shared key.
    words = join(lab.dir, 'words.txt');
    writeFileSync(words, [...WORDS, psk].join('\n') + '\n');
    const r = await lab.exec(process.execPath, [SCRIPT, pcap, words, '--json']);
    assert.equal(r.code, 0, r.stderr);
    report = JSON.parse(r.stdout);
  });
  after(async () => lab?.cleanup());

  it('lanplus: one captured RAKP 1 + RAKP 2 gives the password away to a 10-word dictionary, for both cipher suites', () => {
    assert.deepEqual(report.lanplus.map((f) => [f.user, f.hmac, f.status, f.password, f.tried]), [
      ['admin', 'sha256', 0, 'calvin', 6],
      ['admin', 'sha1', 0, 'calvin', 6],
    ]);
    for (const f of report.lanplus) assert.equal(f.bmc, `${address}:623`);
  });

  it('secure path: nothing in the clear is computed from the pre-shared key, so no guess can be tested, the right key included', () => {
    const s = report.secure;
    const byExchange = Object.fromEntries(s.ike.map((e) => [e.exchange, e]));
    const init = byExchange.IKE_SA_INIT.cleartextPayloads;
    assert.deepEqual(init.filter((t) => t !== 'NOTIFY'), ['KE', 'NONCE', 'SA'], 'proposals, Curve25519 public values, nonces (and notifies, if any)');
    assert.ok(byExchange.IKE_SA_INIT.messages >= 2, 'request and response (a retransmission under load adds one)');
    for (const e of s.ike.filter((x) => x.exchange !== 'IKE_SA_INIT')) assert.deepEqual(e.cleartextPayloads, ['SK'], `${e.exchange}: only the Encrypted payload`);
    assert.ok(byExchange.IKE_AUTH && byExchange.INFORMATIONAL, 'the enrolment and its commit are in the capture');
    assert.equal(s.cleartextAuth, 0);
    assert.ok(s.espPackets >= 4, `${s.espPackets} ESP packets`);
    assert.equal(s.testableGuesses, 0);
    assert.equal(report.words, WORDS.length + 1);
  });

  it('with a participant\'s keys (mgmt-station keys) the same capture decrypts: the AUTH payload was inside SK, every ESP ICV is good', async () => {
    const espFile = join(lab.dir, 'esp_sa');
    const ikeFile = join(lab.dir, 'ikev2_keys');
    await lab.station(['keys', '--wireshark', espFile, '--ikev2', ikeFile]);
    const ike = readFileSync(ikeFile, 'utf8').split('\n').filter(Boolean).flatMap((l) => ['-o', `uat:ikev2_decryption_table:${l}`]);
    const opts = ['-d', 'udp.port==664,udpencap', '-o', 'esp.enable_encryption_decode:TRUE', '-o', 'esp.enable_authentication_check:TRUE', ...espSaOptions(readFileSync(espFile, 'utf8'))];
    const fields = ['frame.number', 'isakmp.exchangetype', 'isakmp.auth.method', 'esp.icv_good', 'asf.type'];
    const without = await tsharkFields(pcap, [], fields);
    assert.equal(without.filter((r) => r['isakmp.auth.method']).length, 0, 'without keys: no AUTH payload visible');
    const withKeys = await tsharkFields(pcap, [...opts, ...ike], fields);
    assert.ok(withKeys.filter((r) => r['isakmp.exchangetype'] === '35' && r['isakmp.auth.method'] === '2').length >= 2, 'IKE_AUTH request and response carry shared-key AUTH (method 2; a retransmission adds one)');
    const esp = withKeys.filter((r) => r['esp.icv_good']);
    assert.ok(esp.length >= 4 && esp.every((r) => r['esp.icv_good'] === '1'), JSON.stringify(esp));
    assert.ok(esp.filter((r) => r['asf.type']).length >= 4, 'the ASF messages inside (RMCP ACKs have none)');
  });

  it('the script\'s text report, as docs/IPMI.md shows it', async () => {
    const r = await lab.exec(process.execPath, [SCRIPT, pcap, words]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /user 'admin', HMAC-SHA256: password 'calvin' found after 6 guesses/);
    assert.match(r.stdout, /IKE_SA_INIT: \d+ messages, in the clear: KE, NONCE, SA\n/); // 2, or 3 with a retransmission under load
    assert.match(r.stdout, /IKE_AUTH: \d+ messages, in the clear: SK/);
    assert.match(r.stdout, /AUTH payloads in the clear: 0; guesses that can be tested: 0 of 10/);
  });
});
