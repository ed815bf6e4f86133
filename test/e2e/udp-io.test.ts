/**
 * The emulator's socket layer (`--udp-io`, lib/batch-udp.ts): batched by default where lib/native is built,
 * node:dgram on request; both answer rmcpping-style clear pings and a station's enrolment and secure verbs, the
 * control API says which is in use, and a bad value is a usage error.
 */
import assert from 'node:assert/strict';
import { EMULATOR, Lab } from '../support/lab.js';
import { UdpPeer } from '../support/udp-peer.js';
import { decodeRmcpAsf, encodeRmcpAsf } from '../../wire/asf.js';
import { writePskFile } from '../support/station-daemon.js';
import { batchUdpUnavailable } from '../../lib/batch-udp.js';

describe('e2e: emulator socket layer (--udp-io)', function () {
  this.timeout(40000);
  let peer: UdpPeer;
  before(async () => {
    peer = await UdpPeer.open();
  });
  after(async () => {
    await peer?.close();
  });

  for (const io of ['batch', 'dgram'] as const) {
    it(`--udp-io ${io}: clear pings answered, a station enrols and reads System State and power-cycles; health and status say ${io}`, async function () {
      if (io === 'batch' && batchUdpUnavailable()) this.skip();
      const lab = new Lab(`udp-io-${io}`);
      try {
        await lab.startEmulator(['--nics', '1', '--udp-io', io]);
        assert.equal((await lab.control.get<{ udpIo: string }>('/v1/health')).udpIo, io);
        const [address, port] = lab.ready!.first.split(':') as [string, string];
        for (let i = 0; i < 50; i++) {
          const r = await peer.request(encodeRmcpAsf(0xff, { type: 'presence-ping', tag: i }), Number(port), address, (x) => x.from.port === Number(port));
          assert.ok(r, `pong ${i}`);
          assert.equal(decodeRmcpAsf(r.bytes).asf?.tag, i);
        }
        await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file]);
        for (let i = 0; i < 5; i++) assert.equal((await lab.station(['state', 'nic-1'])).response.type, 'system-state-response');
        await lab.station(['power-cycle', 'nic-1']);
        assert.equal((await lab.nic('nic-1')).counters.accepted.secure >= 6, true);
        const nic = (await lab.control.get<{ udp: { io: string; truncated: number; sendQueueFull: number }; counters: { dropped: Record<string, number> } }[]>('/v1/nics'))[0]!;
        assert.deepEqual(nic.udp, { io, truncated: 0, sendQueueFull: 0 });
      } finally {
        await lab.cleanup();
      }
    });
  }

  it('--udp-io bogus is a usage error (exit 2) naming the choices', async () => {
    const lab = new Lab('udp-io-bad');
    try {
      const r = await lab.run(['start', '--nics', '1', '--port-base', '29400', '--data-dir', `${lab.dir}/nics`, '--control', '127.0.0.1:0', '--udp-io', 'bogus'], { bin: EMULATOR });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--udp-io must be batch or dgram, got 'bogus'/);
    } finally {
      await lab.cleanup();
    }
  });
});
