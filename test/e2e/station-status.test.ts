/**
 * Bad input at the station is dropped and counted by reason, and `mgmt-station status` shows the counts:
 * datagrams too short to carry an SPI, datagrams for an SPI the station does not hold, malformed heartbeats.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Lab, waitFor } from '../support/lab.js';
import { StationDaemon, stopAllStations, writePskFile } from '../support/station-daemon.js';
import { freeUdpPort } from '../support/cluster.js';

describe('e2e station: drops by reason, shown by mgmt-station status', function () {
  this.timeout(40000);
  let lab: Lab;
  after(async () => {
    await stopAllStations();
    await lab.cleanup();
  });

  it('counts short, unknown-SPI and malformed-heartbeat datagrams and keeps serving', async () => {
    lab = new Lab('station-status');
    await lab.startEmulator(['--nics', '1']);
    await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file]);
    const port = await freeUdpPort();
    const d = await StationDaemon.start(lab, ['--listen', `127.0.0.1:${port}`, '--poll-interval', '500']);
    const s = dgram.createSocket('udp4');
    const send = (b: Uint8Array) => new Promise<void>((r) => s.send(b, port, '127.0.0.1', () => r()));
    await send(Uint8Array.of(1, 2)); // too short for an SPI
    await send(Uint8Array.from({ length: 40 }, (_, i) => (i < 4 ? 0x42 : i))); // an SPI nobody holds
    await send(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3)); // heartbeat SPI, wrong length
    s.close();
    const st = await waitFor('the drops to be counted', async () => {
      const r = await lab.run(['status', '--json']);
      assert.equal(r.code, 0, r.stderr);
      return r.json.socketDrops.short >= 1 && r.json.socketDrops.unknownSpi >= 1 && r.json.heartbeats.badProbe >= 1 ? r.json : null;
    }, 5000, 200);
    assert.equal(st.id, 'station-1');
    const text = await lab.run(['status']);
    assert.match(text.stdout, /dropped on its socket: short=1,unknownSpi=1/);
    assert.equal((await d.verb('nic-1', 'ping')).ok, true, 'still serving');
  });

  it('says so in one line when no daemon runs (exit 3)', async () => {
    await stopAllStations();
    const r = await lab.run(['status']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^mgmt-station: E_UNREACHABLE: no daemon of station 'station-1' is running/);
  });
});
