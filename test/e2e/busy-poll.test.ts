/**
 * The emulator's busy polling (nic-emulator/busy-poll.ts, on by default, `--busy-poll-us US`): every datagram is
 * still answered, the control API shows how polling went, an idle emulator stops polling, `--busy-poll-us 0`
 * never polls, and a bad value is a usage error.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EMULATOR, Lab } from '../support/lab.js';
import { UdpPeer } from '../support/udp-peer.js';
import { decodeRmcpAsf, encodeRmcpAsf } from '../../wire/asf.js';

/** User + system CPU of a process in ms (/proc/PID/stat, 10 ms ticks). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

interface BusyPollStats { maxUs: number; windowUs: number; hits: number; misses: number; backoffs: number }

describe('e2e: emulator busy polling (--busy-poll-us)', function () {
  this.timeout(20000);
  let lab: Lab;
  let peer: UdpPeer;

  before(async () => {
    lab = new Lab('busy-poll');
    await lab.startEmulator(['--nics', '1']); // the default: polling on, up to 200 µs
    peer = await UdpPeer.open();
  });
  after(async () => {
    await peer?.close();
    await lab?.cleanup();
  });

  /** 500 back-to-back Presence Pings to the lab's first NIC, each answered with its tag; returns /v1/health's busyPoll. */
  async function pings(l: Lab): Promise<BusyPollStats> {
    const [address, port] = l.ready!.first.split(':') as [string, string];
    for (let i = 0; i < 500; i++) {
      const r = await peer.request(encodeRmcpAsf(0xff, { type: 'presence-ping', tag: i & 0xff }), Number(port), address, (x) => x.from.port === Number(port));
      assert.ok(r, `pong ${i}`);
      assert.equal(decodeRmcpAsf(r.bytes).asf?.tag, i & 0xff);
    }
    return (await l.control.get<{ busyPoll: BusyPollStats }>('/v1/health')).busyPoll;
  }

  it('by default answers 500 back-to-back Presence Pings, and /v1/health shows datagrams read while polling', async () => {
    const b = await pings(lab);
    assert.equal(b.maxUs, 200);
    assert.ok(b.hits + b.misses > 0, JSON.stringify(b));
  });

  it('--busy-poll-us 0 answers the same pings without polling once', async () => {
    const off = new Lab('busy-poll-off');
    try {
      // As root each lab has its own 127.x.y.1; otherwise a port base apart from the first lab's.
      await off.startEmulator(['--nics', '1', '--busy-poll-us', '0', ...(process.getuid?.() === 0 ? [] : ['--port-base', '29200'])]);
      assert.deepEqual(await pings(off), { maxUs: 0, windowUs: 0, hits: 0, misses: 0, backoffs: 0 });
    } finally {
      await off.cleanup();
    }
  });

  it('an idle emulator does not poll: under 5 % of a CPU over 1 s without traffic', async () => {
    await new Promise((r) => setTimeout(r, 200));
    const c0 = cpuMs(lab.ready!.pid);
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(cpuMs(lab.ready!.pid) - c0 <= 50, `${cpuMs(lab.ready!.pid) - c0} ms of CPU while idle`);
  });

  it('a bad window is a usage error (exit 2)', async () => {
    for (const bad of ['-5', 'abc', '1.5', '100001']) {
      const r = await lab.run(['start', '--nics', '1', '--port-base', '29100', '--data-dir', `${lab.dir}/bad`, '--control', '127.0.0.1:0', `--busy-poll-us=${bad}`], { bin: EMULATOR });
      assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
      assert.match(r.stderr, /--busy-poll-us must be/);
    }
  });
});
