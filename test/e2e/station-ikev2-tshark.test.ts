/**
 * Issue 3, acceptance 2: a loopback capture of the key exchanges decrypts in tshark with the lines
 * `mgmt-station keys --wireshark F --ikev2 G` exports. Wireshark's IKEv2 dissector recomputes the AES-GCM
 * ICV of every SK payload (RFC 5282) with SK_ei/SK_er, so a correct ICV on IKE_AUTH, CREATE_CHILD_SA and
 * INFORMATIONAL checks the station's and the host agent's key derivation (RFC 7296 §2.13-2.14) against a
 * decoder nobody here wrote. A wrong ICV shows as the expert field `isakmp.ikev2.integrity_checksum`
 * (../shared/reference/tshark/README.md §5); the commit notifies SA_READY/SA_ACK/SA_CONFIRM are 40960-40962.
 * The capture covers an enrolment (CLI), two refreshes through the daemon (a new IKE SA, then
 * CREATE_CHILD_SA on it) and secure commands, whose ESP packets must all show `esp.icv_good` 1.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../support/lab.js';
import { Capture, espSaOptions, hasBinary, tsharkFields } from '../support/tshark.js';
import { StationDaemon, stopAllStations, writePskFile } from '../support/station-daemon.js';

/** RFC 7296 §3.1 exchange types. */
const IKE_SA_INIT = '34';
const IKE_AUTH = '35';
const CREATE_CHILD_SA = '36';
const INFORMATIONAL = '37';

const FIELDS = [
  'frame.number', 'udp.srcport', 'udp.dstport', 'isakmp.exchangetype', 'isakmp.ispi', 'isakmp.enc.decrypted',
  'isakmp.notify.msgtype', 'isakmp.ikev2.integrity_checksum', 'isakmp.enc.pad_length.big',
  'esp.spi', 'esp.icv_good', 'esp.icv_bad', 'asf.type', '_ws.col.Info',
];

describe('e2e station: tshark decrypts the IKEv2 exchanges and the ESP traffic with the exported keys', function () {
  this.timeout(60000);
  let lab: Lab;
  let capture: Capture | null = null;
  let rows: Record<string, string>[] = [];
  let ikeLines: string[] = [];
  let refreshes: any[] = [];
  let pcap = '';
  let baseOptions: string[] = [];
  let dissect: string[] = [];
  let endEspOptions: string[] = [];

  before(async function () {
    if (!hasBinary('tshark')) {
      console.log('    (skipped: tshark is not installed; apt-get install tshark)');
      this.skip();
    }
    lab = new Lab('station-tshark');
    await lab.startEmulator(['--nics', '1']);
    const nic = await lab.nic('nic-1');
    const { address, ports } = nic as { address: string; ports: { secure: number; ike: number } };
    pcap = join(lab.dir, 'ike.pcap');
    capture = await Capture.start(pcap, `host ${address} and (udp port ${ports.ike} or udp port ${ports.secure})`);

    const { file } = writePskFile(lab);
    await lab.station(['enroll', 'nic-1', '--psk-file', file]);
    // The enrolled SA is retired by the second refresh and `keys` exports only the SAs held: export now too.
    const espAtEnrol = join(lab.dir, 'esp_sa.enrol');
    await lab.station(['keys', '--wireshark', espAtEnrol]);
    const daemon = await StationDaemon.start(lab, ['--refresh-interval', '3600']);
    // Forwarded to the daemon: its first refresh needs an IKE SA of its own, the second rekeys on it.
    refreshes = [await lab.station(['refresh', 'nic-1']), await lab.station(['refresh', 'nic-1'])];
    for (const verb of ['state', 'ping', 'power-up', 'capabilities']) await lab.station([verb, 'nic-1']);
    await capture.stop();

    const espFile = join(lab.dir, 'esp_sa');
    const ikeFile = join(lab.dir, 'ikev2_keys');
    const keys = await lab.station(['keys', '--wireshark', espFile, '--ikev2', ikeFile]);
    assert.equal(keys.ikeSas, 2, 'two IKE SAs: the enrolment\'s and the daemon\'s');
    await daemon.kill('SIGTERM');

    ikeLines = readFileSync(ikeFile, 'utf8').split('\n').filter((l) => l.length > 0);
    dissect = [
      '-d', `udp.port==${ports.secure},udpencap`,
      ...(ports.ike === 500 ? [] : ['-d', `udp.port==${ports.ike},isakmp`]),
      '-o', 'esp.enable_encryption_decode:TRUE', '-o', 'esp.enable_authentication_check:TRUE',
    ];
    endEspOptions = espSaOptions(readFileSync(espFile, 'utf8'));
    baseOptions = [...dissect, ...espSaOptions(readFileSync(espAtEnrol, 'utf8')), ...endEspOptions];
    rows = await tsharkFields(pcap, [...baseOptions, ...ikeLines.flatMap((l) => ['-o', `uat:ikev2_decryption_table:${l}`])], FIELDS);
  });

  after(async () => {
    // SIGINT, not SIGKILL: a tshark killed outright leaves its dumpcap child capturing.
    await capture?.stop(0).catch(() => capture?.kill());
    await stopAllStations();
    await lab?.cleanup();
  });

  const ike = () => rows.filter((r) => r['isakmp.exchangetype'] !== '');
  // The sync frames a station session starts with (wire/sync-frame.ts: SPI 0xffffffff, HMAC, no ESP) are not ESP.
  const isEsp = (r: Record<string, string>) => r['esp.spi'] !== '' && r['esp.spi'] !== '0xffffffff';
  const esp = () => rows.filter(isEsp);
  const describeRows = (rs: Record<string, string>[]) => rs.map((r) => `${r['frame.number']} ${r['_ws.col.Info']}`).join('\n');

  it('the daemon\'s second refresh is a CREATE_CHILD_SA on its IKE SA', () => {
    assert.deepEqual(refreshes.map((r) => r.exchange), ['IKE_AUTH', 'CREATE_CHILD_SA']);
    assert.ok(refreshes[1].generation > refreshes[0].generation);
  });

  it('keys --ikev2 writes ikev2_decryption_table lines (8 columns, bare hex, AES-GCM-128, no integrity)', () => {
    assert.equal(ikeLines.length, 2);
    for (const l of ikeLines) {
      assert.match(l, /^[0-9a-f]{16},[0-9a-f]{16},[0-9a-f]{40},[0-9a-f]{40},"AES-GCM-128 with 16 octet ICV \[RFC5282\]",,,"NONE \[RFC4306\]"$/);
    }
  });

  it('the capture holds every exchange: IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA and INFORMATIONAL, twice IKE_AUTH', () => {
    const types = ike().map((r) => r['isakmp.exchangetype']);
    for (const t of [IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL]) assert.ok(types.includes(t), `exchange type ${t} captured:\n${describeRows(ike())}`);
    assert.equal(types.filter((t) => t === IKE_AUTH).length, 4, 'two IKE_AUTH request/response pairs (enrol, daemon)');
    assert.equal(types.filter((t) => t === CREATE_CHILD_SA).length, 2, 'one CREATE_CHILD_SA request/response pair');
  });

  it('every encrypted IKE message decrypts with a correct ICV (no isakmp.ikev2.integrity_checksum)', () => {
    const encrypted = ike().filter((r) => r['isakmp.exchangetype'] !== IKE_SA_INIT);
    assert.ok(encrypted.length >= 12, `encrypted IKE messages captured: ${encrypted.length}`);
    const undecrypted = encrypted.filter((r) => r['isakmp.enc.decrypted'] === '');
    assert.deepEqual(describeRows(undecrypted), '', 'messages tshark could not decrypt');
    const badIcv = encrypted.filter((r) => r['isakmp.ikev2.integrity_checksum'] !== '' || r['isakmp.enc.pad_length.big'] !== '');
    assert.deepEqual(describeRows(badIcv), '', 'messages with an incorrect ICV');
    for (const t of [IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL]) {
      assert.ok(encrypted.some((r) => r['isakmp.exchangetype'] === t && r['isakmp.enc.decrypted'] !== ''), `a decrypted message of exchange type ${t}`);
    }
  });

  it('control: with one SK_ei bit flipped, tshark does flag the initiator\'s messages (the check above is not vacuous)', async () => {
    const [spiI, spiR, skEi, ...rest] = ikeLines[0].split(',');
    const flipped = (parseInt(skEi[0], 16) ^ 1).toString(16) + skEi.slice(1);
    const bad = [[spiI, spiR, flipped, ...rest].join(','), ...ikeLines.slice(1)];
    const rs = await tsharkFields(pcap, [...baseOptions, ...bad.flatMap((l) => ['-o', `uat:ikev2_decryption_table:${l}`])], FIELDS);
    const flagged = rs.filter((r) => r['isakmp.ispi'].replace(/:/g, '') === spiI && r['isakmp.ikev2.integrity_checksum'] !== '');
    assert.ok(flagged.length >= 3, `frames of the corrupted IKE SA flagged: ${flagged.length}`);
  });

  it('the decrypted INFORMATIONAL exchanges carry SA_READY 40960, SA_ACK 40961 and SA_CONFIRM 40962', () => {
    const notifies = (t: string) => ike().filter((r) => r['isakmp.exchangetype'] === t).flatMap((r) => r['isakmp.notify.msgtype'].split(',')).filter(Boolean);
    const info = notifies(INFORMATIONAL);
    for (const n of ['40960', '40961', '40962']) {
      // Once per commit: the enrolment, the daemon's IKE_AUTH refresh and its CREATE_CHILD_SA refresh.
      assert.equal(info.filter((x) => x === n).length, 3, `notify ${n} in INFORMATIONAL:\n${describeRows(ike())}`);
    }
  });

  it('every ESP packet verifies (esp.icv_good 1) and dissects as RMCP/ASF, with the keys exported after enrolment and at the end', () => {
    const packets = esp();
    assert.ok(packets.length >= 8, `ESP packets captured: ${packets.length}`);
    for (const r of packets) {
      assert.equal(r['esp.icv_good'], '1', `frame ${r['frame.number']}: ${r['_ws.col.Info']}`);
      assert.equal(r['esp.icv_bad'], '0');
    }
    const asf = packets.map((r) => r['asf.type']).filter(Boolean);
    for (const t of ['0x82', '0x42', '0x80', '0x40', '0x11', '0x81', '0x41']) assert.ok(asf.includes(t), `ASF type ${t} among ${asf.join(' ')}`);
  });

  // `keys --wireshark` exports retired SAs too, so one export at the end decrypts a capture spanning refreshes.
  it('the keys exported at the end alone decrypt every ESP packet of the capture (docs/CAPTURES.md recipe)', async () => {
    const ikeOptions = ikeLines.flatMap((l) => ['-o', `uat:ikev2_decryption_table:${l}`]);
    const rs = await tsharkFields(pcap, [...dissect, ...endEspOptions, ...ikeOptions], FIELDS);
    const bad = rs.filter((r) => isEsp(r) && r['esp.icv_good'] !== '1');
    assert.deepEqual(describeRows(bad), '', 'ESP packets the exported keys do not decrypt');
  });
});
