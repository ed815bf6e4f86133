/**
 * Issue 2, acceptance 5 (first half): a captured secure packet replayed is rejected — also after the emulator
 * was restarted (cleanly, and killed outright) on the same data directory and addresses. The NIC boots from
 * its EEPROM: its SAs are back, its inbound high-water mark resumes above the checkpointed block (DESIGN
 * §2.6), so the old packet is still a replay, and the station's next commands still get through (the station
 * jumps its sequence number past the NIC's block by itself, nic-session.ts).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Lab, isRoot, waitFor } from '../support/lab.js';
import { Capture, capturedDatagrams, hasBinary, type CapturedDatagram } from '../support/tshark.js';
import { UdpPeer } from '../support/udp-peer.js';

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
    requests = (await capturedDatagrams(file)).filter((d) => d.dst === nicAddr && d.dstPort === securePort);
    assert.equal(requests.length, 2, 'the capture holds the ping and the power-cycle request');
    peer = await UdpPeer.open();
  });
  after(async () => {
    capture?.kill();
    await peer?.close();
    await lab?.cleanup();
  });

  /** Resend every captured request, byte for byte, and check the NIC drops each one as a replay. */
  async function replayAll(): Promise<void> {
    const before = await lab.nic('nic-1');
    const replays0 = before.counters.dropped.replay ?? 0;
    const answers = peer.received.length;
    for (const d of requests) await peer.send(d.payload, securePort, nicAddr);
    const after = await waitFor('replays counted', async () => {
      const s = await lab.nic('nic-1');
      return (s.counters.dropped.replay ?? 0) >= replays0 + requests.length ? s : null;
    }, 3000);
    assert.equal(after.counters.dropped.replay, replays0 + requests.length);
    assert.equal(after.counters.accepted.secure, before.counters.accepted.secure, 'nothing accepted');
    assert.equal(after.executed, before.executed, 'the replayed power-cycle did not run again');
    assert.equal(after.host, before.host);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(peer.received.length, answers, 'a replay gets no answer');
  }

  it('a captured request resent raw to UDP/664 is dropped and counted as "replay"', async () => {
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

      it("the station's next commands succeed within their timeout (its sequence jump gets past the NIC's block)", async () => {
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
