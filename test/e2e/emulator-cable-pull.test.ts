/**
 * Issue 15, smaller items: `cable-pull` did not cut the host's IKE traffic — the host agent went on answering on its
 * IKE port, so a station could refresh through a pulled cable. The link is the NIC's and the host's one wire: with
 * the cable out nothing answers on the IKE port (nor on 623/664), a refresh fails, and after `cable-plug` IKE works
 * again (firmware/nic-machine.ts: wantsIkePort follows the link; the shell closes and rebinds the port).
 */
import assert from 'node:assert/strict';
import { Lab } from '../support/lab.js';
import { UdpPeer } from '../support/udp-peer.js';
import { writePskFile } from '../support/station-daemon.js';

/** An IKE_SA_INIT whose only payload is of an unknown type with the critical bit: a live agent answers it (§2.5). */
function ikeInitWithCriticalPayload(): Uint8Array {
  const b = Buffer.alloc(32);
  b.writeUInt32BE(0xc0ffee01, 0);
  b.writeUInt32BE(0x15151515, 4);
  b[16] = 100;
  b[17] = 0x20;
  b[18] = 34;
  b[19] = 0x08;
  b.writeUInt32BE(32, 24);
  b[29] = 0x80;
  b.writeUInt16BE(4, 30);
  return new Uint8Array(b);
}

describe('e2e emulator: cable-pull cuts the host agent\'s IKE traffic too', function () {
  this.timeout(60000);
  let lab: Lab;
  let peer: UdpPeer;
  before(async () => {
    lab = new Lab('cable-pull');
    await lab.startEmulator(['--nics', '1']);
    await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file], 30000);
    peer = await UdpPeer.open();
  });
  after(async () => {
    await peer?.close();
    await lab?.cleanup();
  });

  /** Does anything answer an IKE_SA_INIT on the NIC's IKE port within `ms`? */
  async function ikeAnswers(ms: number): Promise<boolean> {
    const { address, ports } = await lab.nic('nic-1');
    const r = await peer.request(ikeInitWithCriticalPayload(), ports.ike, address, (x) => x.from.port === ports.ike, ms);
    return r !== null;
  }

  it('cable in: the host agent answers on its IKE port', async () => {
    assert.equal((await lab.nic('nic-1')).hostAgent.running, true);
    assert.equal(await ikeAnswers(2000), true);
  });

  it('cable-pull: the IKE port goes quiet and a refresh fails; the host stays up', async () => {
    await lab.host('nic-1', 'cable-pull');
    const s = await lab.nic('nic-1');
    assert.equal(s.link, 'down');
    assert.equal(s.host, 'up', 'the host OS still runs: only its wire is gone');
    assert.equal(s.hostAgent.running, false);
    assert.equal(await ikeAnswers(1500), false, 'no IKE answer through a pulled cable');
    const r = await lab.run(['refresh', 'nic-1', '--timeout', '2000', '--json'], { timeoutMs: 20000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /E_IKE_TIMEOUT/);
    assert.equal((await lab.nic('nic-1')).sa.pending, null, 'nothing staged on the NIC');
  });

  it('cable-plug: IKE answers again and a refresh commits', async () => {
    const before = (await lab.nic('nic-1')).sa.active.generation;
    await lab.host('nic-1', 'cable-plug');
    assert.equal((await lab.nic('nic-1')).link, 'up');
    assert.equal(await ikeAnswers(2000), true);
    const r = await lab.station(['refresh', 'nic-1'], 30000);
    assert.ok(r.generation > before, `generation ${r.generation} > ${before}`);
  });
});
