/**
 * Issue 2, acceptance 5 (first half): a captured secure packet replayed is rejected — also after the emulator
 * was restarted (cleanly, and killed outright) on the same data directory and addresses. The NIC boots from
 * its EEPROM with its SAs, but no sync epoch is live until a station syncs (wire/sync-frame.ts): a packet of an
 * epoch that is live is a replay in that epoch's window, one of an ended epoch is refused as such ('epoch'), and
 * one that finds the NIC not synced since its boot is not acted on ('unsynced'). The station's next commands get
 * through: each CLI run syncs first (mgmt-station/core/session.ts).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Lab, isRoot, waitFor } from '../support/lab.js';
import { Capture, capturedDatagrams, hasBinary, type CapturedDatagram } from '../support/tshark.js';
import { UdpPeer } from '../support/udp-peer.js';
import { isSyncFrame } from '../../wire/sync-frame.js';

describe('e2e: replayed secure packets, before and after an emulator restart', function () {
  this.timeout(30000);
  let lab: Lab;
  let peer: UdpPeer;
  let capture: Capture | null = null;
  let nicAddr = '';
  let securePort = 664;
  let requests: CapturedDatagram[] = [];
  let generation = 0;

  before(async function () {
    if (!hasBinary('tshark') || !isRoot) this.skip(); // the replayed packets come from a live tshark capture (root)
    lab = new Lab('replay');
    await lab.startEmulator(['--nics', '2']);
    const nic = await lab.nic('nic-1');
    nicAddr = nic.address;
    securePort = nic.ports.secure;
    generation = (await lab.station(['sa', 'manual', 'nic-1'])).generation;
    capture = await Capture.start(join(lab.dir, 'replay.pcap'), `udp port ${securePort} and host ${nicAddr}`);
    await lab.station(['ping', 'nic-1']);
    await lab.station(['power-cycle', 'nic-1']);
    const file = await capture.stop();
    // The ESP requests; the sync frames before them (HELLO, SET) are left out (a replayed SET answers no challenge).
    requests = (await capturedDatagrams(file)).filter((d) => d.dst === nicAddr && d.dstPort === securePort && !isSyncFrame(d.payload));
    assert.equal(requests.length, 2, 'the capture holds the ping and the power-cycle request');
    peer = await UdpPeer.open();
  });
  after(async () => {
    capture?.kill();
    await peer?.close();
    await lab?.cleanup();
  });

  /** Drops of a replayed packet: in its live epoch's window, of an ended epoch, or before any sync since boot. */
  const replayDrops = (s: { counters: { dropped: Record<string, number> } }) => ['replay', 'epoch', 'unsynced'].reduce((a, k) => a + (s.counters.dropped[k] ?? 0), 0);

  /** Resend every captured request, byte for byte, and check the NIC drops each one as a replay. */
  async function replayAll(): Promise<void> {
    const before = await lab.nic('nic-1');
    const replays0 = replayDrops(before);
    const espAnswers = () => peer.received.filter((x) => !isSyncFrame(x.bytes)).length;
    const answers = espAnswers();
    for (const d of requests) await peer.send(d.payload, securePort, nicAddr);
    const after = await waitFor('replays counted', async () => {
      const s = await lab.nic('nic-1');
      return replayDrops(s) >= replays0 + requests.length ? s : null;
    }, 3000);
    assert.equal(replayDrops(after), replays0 + requests.length, JSON.stringify(after.counters.dropped));
    assert.equal(after.counters.accepted.secure, before.counters.accepted.secure, 'nothing accepted');
    assert.equal(after.executed, before.executed, 'the replayed power-cycle did not run again');
    assert.equal(after.host, before.host);
    await new Promise((r) => setTimeout(r, 200));
    // A replay gets no answer under ESP (a NIC not synced since boot may invite a sync: a sync frame, no ESP).
    assert.equal(espAnswers(), answers, 'a replay gets no answer');
  }

  it('a captured request resent raw to UDP/664 is dropped and counted as a replay', async () => {
    await waitFor('host up again after the power-cycle', async () => (await lab.nic('nic-1')).host === 'up', 5000);
    await replayAll();
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    describe(`after a ${signal} restart on the same data directory and addresses`, () => {
      before(async () => {
        const first = lab.ready!.first;
        const ready = await lab.restartEmulator(signal);
        assert.equal(ready.first, first, 'same addresses');
        assert.equal(ready.running, 2);
      });

      it('nic-emulator status shows the SA back as the active generation', async () => {
        const r = await lab.emulatorCli(['status', 'nic-1', '--json']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.json.state, 'running');
        assert.equal(r.json.sa.active.generation, generation);
        assert.equal(r.json.sa.active.toNicSpi, Buffer.from(requests[0].payload).readUInt32BE(0));
      });

      it('the captured requests are still rejected as replays', async () => {
        await replayAll();
      });

      it("the station's next commands succeed within their timeout (each syncs with the rebooted NIC first)", async () => {
        const ping = await lab.station(['ping', 'nic-1']);
        assert.equal(ping.response.type, 'presence-pong');
        assert.equal(ping.generation, generation);
        const cycle = await lab.station(['power-cycle', 'nic-1']);
        assert.equal(cycle.response.type, 'rmcp-ack');
        assert.equal((await lab.nic('nic-1')).executed, 1);
        await waitFor('host up again', async () => (await lab.nic('nic-1')).host === 'up', 5000);
      });
    });
  }
});
