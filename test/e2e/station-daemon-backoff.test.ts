/**
 * Issue 15, smaller items: while a host is hung (its System State reads S0, but no IKE agent runs) the daemon
 * retried its timed refresh at every poll, back to back (24 IKE datagrams in 20 s). Now a failed refresh is tried
 * again after 5 s, 10 s, 20 s ... (at most 5 min apart, mgmt-station/core/daemon-core.ts refreshRetryDelayMs), and
 * `status` says so. Measured at the host's IKE port: with the agent gone the test listens there itself and counts
 * what the daemon sends.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Lab, waitFor } from '../support/lab.js';
import { StationDaemon, nicSa, sleep, stopAllStations, writePskFile } from '../support/station-daemon.js';
import { refreshRetryDelayMs } from '../../mgmt-station/core/daemon-core.js';

describe('e2e station: the daemon backs off its refreshes while the host cannot answer IKE', function () {
  this.timeout(90000);
  let lab: Lab;
  let daemon: StationDaemon;
  let spy: dgram.Socket | null = null;

  before(async () => {
    lab = new Lab('daemon-backoff');
    await lab.startEmulator(['--nics', '1']);
    await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file], 30000);
    daemon = await StationDaemon.start(lab, ['--refresh-interval', '1', '--poll-interval', '300']);
  });
  after(async () => {
    spy?.close();
    await stopAllStations();
    await lab?.cleanup();
  });

  it('the retry delays: 5 s, 10 s, 20 s ... at most 5 min', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 50].map(refreshRetryDelayMs), [5000, 10000, 20000, 40000, 80000, 160000, 300000, 300000, 300000]);
  });

  it('host hung for 20 s: two exchanges, about 12 IKE datagrams (back to back it was 24 and more); status shows the back-off', async () => {
    const g0 = (await nicSa(lab, 'nic-1')).active!.generation;
    await waitFor('a timed refresh', async () => ((await nicSa(lab, 'nic-1')).active!.generation > g0 ? true : null), 10000, 100);
    const { address, ports } = await lab.nic('nic-1');
    await lab.host('nic-1', 'hang');
    // The agent is gone: its port is free once the emulator has closed it. Listen there and count.
    const got: number[] = [];
    const t0 = Date.now();
    spy = await waitFor('the IKE port free', async () => {
      const s = dgram.createSocket('udp4');
      const ok = await new Promise<boolean>((r) => {
        s.once('error', () => r(false));
        s.bind(ports.ike, address, () => r(true));
      });
      if (ok) return s;
      s.close();
      return null;
    }, 3000, 20);
    spy.on('message', (m) => {
      if (m.length >= 28 && m[17] === 0x20) got.push(Date.now() - t0); // IKEv2 header: version 2.0
    });
    await sleep(20000);
    spy.close();
    spy = null;
    // An exchange sends a request and retransmits it (200, 400, 800 ms); a CREATE_CHILD_SA on the IKE SA the agent
    // forgot falls back to a new IKE_SA_INIT within the same refresh (8 datagrams in 5 s), a refresh without an IKE
    // SA sends 4. Back to back that is 24 and more in 20 s; with the back-off (5 s, then 10 s) 12 to 16.
    console.log(`      ${got.length} IKE datagrams in 20 s, at ${got.map((t) => (t / 1000).toFixed(1)).join(' ')} s`);
    assert.ok(got.length > 0, 'the daemon did try');
    assert.ok(got.length <= 16, `${got.length} IKE datagrams in 20 s`);
    const st = (await daemon.status()).nics[0] as unknown as { refreshFailures: number; retryRefreshAt: number | null };
    assert.ok(st.refreshFailures >= 2, JSON.stringify(st));
    assert.ok(st.retryRefreshAt !== null && st.retryRefreshAt > Date.now(), 'the next try is in the future');
  });

  it('after wake the next try succeeds, and the back-off is cleared', async () => {
    const g = (await nicSa(lab, 'nic-1')).active!.generation;
    await lab.host('nic-1', 'wake');
    await lab.station(['refresh', 'nic-1'], 30000); // a user's refresh is not held back by the daemon's back-off
    await waitFor('the back-off cleared', async () => {
      const st = (await daemon.status()).nics[0] as unknown as { refreshFailures: number; retryRefreshAt: number | null };
      return st.refreshFailures === 0 && st.retryRefreshAt === null ? st : null;
    }, 10000, 200);
    await waitFor('timed refreshes again', async () => ((await nicSa(lab, 'nic-1')).active!.generation > g + 1 ? true : null), 10000, 100);
  });
});
