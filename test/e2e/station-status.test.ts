/**
 * Bad input at the station is dropped and counted by reason, and `mgmt-station status` shows the counts:
 * datagrams too short to carry an SPI, datagrams for an SPI the station does not hold, malformed heartbeats.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import http from 'node:http';
import { rmSync } from 'node:fs';
import { Lab, waitFor } from '../support/lab.js';
import { StationDaemon, announceStandIn, stopAllStations, writePskFile } from '../support/station-daemon.js';
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
    // Times are ISO 8601 strings (issue 17: epoch ms here, ISO strings elsewhere).
    for (const n of st.nics) assert.match(String(n.lastRefresh), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const text = await lab.run(['status']);
    assert.match(text.stdout, /dropped=2 \(short=1,unknownSpi=1\) on its socket; heartbeats=1 \(badProbe=1\)/); // one form for counters (issue 17)
    assert.equal((await d.verb('nic-1', 'ping')).ok, true, 'still serving');
  });

  it('status lists no phantom NIC after refresh of an unknown one, shows a failed poll\'s host as unknown, and rounds forwarded times as local', async () => {
    await stopAllStations();
    const d = await StationDaemon.start(lab, ['--poll-interval', '300']);
    const bad = await lab.run(['refresh', 'nic-99']);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stderr, /E_NOT_FOUND/);
    assert.deepEqual((await d.status()).nics.map((n) => n.id), ['nic-1'], 'no phantom nic-99');
    const ping = await lab.run(['ping', 'nic-1', '--json']);
    assert.equal(ping.code, 0, ping.stderr);
    assert.match(String(ping.json.rttMs), /^\d+(\.\d{1,3})?$/, `rttMs ${ping.json.rttMs} rounded to µs`);
    const refresh = await lab.run(['refresh', 'nic-1', '--json']);
    assert.equal(refresh.code, 0, refresh.stderr);
    assert.match(String(refresh.json.ms), /^\d+(\.\d{1,3})?$/, `ms ${refresh.json.ms} rounded to µs`);
    await lab.host('nic-1', 'cable-pull');
    try {
      await waitFor('the failed poll to show the host as unknown', async () => (await d.status()).nics.find((n) => n.id === 'nic-1' && n.host === 'unknown (last S0)' && n.lastError), 5000, 100);
    } finally {
      await lab.host('nic-1', 'cable-plug');
    }
    await waitFor('the host known again', async () => (await d.status()).nics.find((n) => n.id === 'nic-1' && n.host === 'S0'), 5000, 100);
  });

  it('a daemon that takes the request but never answers: E_TIMEOUT (exit 1), not a hang', async () => {
    await stopAllStations();
    const sockets = new Set<import('node:net').Socket>();
    const hung = http.createServer(() => { /* takes the request, never answers */ });
    hung.on('connection', (c) => sockets.add(c));
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', () => r()));
    const { port } = hung.address() as import('node:net').AddressInfo;
    // The announce file a running daemon writes beside the store (this test process stands in for its pid).
    const announce = announceStandIn(lab, `127.0.0.1:${port}`);
    try {
      const t0 = Date.now();
      const r = await lab.run(['status'], { timeoutMs: 20000 });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^mgmt-station: E_TIMEOUT: the station daemon at 127\.0\.0\.1:\d+ took GET \/v1\/status but did not answer within 10000 ms/);
      assert.ok(Date.now() - t0 < 15000);
    } finally {
      for (const c of sockets) c.destroy();
      await new Promise<void>((r) => hung.close(() => r()));
      rmSync(announce, { force: true });
    }
  });

  it('says so in one line when no daemon runs (exit 3)', async () => {
    await stopAllStations();
    const r = await lab.run(['status']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^mgmt-station: E_UNREACHABLE: no daemon of station 'station-1' is running/);
  });
});
