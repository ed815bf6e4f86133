/**
 * Issue 2, acceptance 5 (second half): wrong-key, truncated, bit-flipped and random datagrams are dropped and
 * counted by reason; 100,000 mutated datagrams thrown at UDP 623 and 664 of one NIC neither crash the
 * emulator nor change its state (host state, SA generations, executed commands), and the secure path still
 * works afterwards.
 *
 * The seeds are valid packets: on 664, secure requests sealed exactly as the station seals them, with the
 * station's own SA read from its store (each seed is delivered once first and answered, which proves it
 * valid), plus the NIC's answers to them; on 623, well-formed RMCP/ASF messages. The mutations come from a
 * seeded PRNG, so a failure is reproducible from FUZZ_SEED.
 */
import assert from 'node:assert/strict';
import { defaultUdpIo } from '../../lib/batch-udp.js';
import { Lab, waitFor } from '../support/lab.js';
import { UdpPeer } from '../support/udp-peer.js';
import { prng } from '../support/prng.js';
import { stationActiveSa } from '../support/station-sa.js';
import { SaEndpoint } from '../../wire/sa-endpoint.js';
import { stationIv } from '../../wire/sync-iv.js';
import { syncedEndpoint } from '../support/synced-endpoint.js';
import { encodeRmcpAsf, type AsfMessage } from '../../wire/asf.js';
import { encodeInnerUdp } from '../../wire/esp.js';

const TOTAL = 100_000;
const SEED = Number(process.env.FUZZ_SEED ?? 0x11fe11ae);

const BOOT = { iana: 4542, specialCommand: 0, specialCommandParam: 0, bootOptionsMask: 0, oemParams: 0 };
const CLEAR_SEEDS: [number, AsfMessage][] = [
  [0xff, { type: 'presence-ping', tag: 1 }],
  [0x07, { type: 'presence-ping', tag: 2 }],
  [0xff, { type: 'capabilities-request', tag: 3 }],
  [0xff, { type: 'system-state-request', tag: 4 }],
  [0x01, { type: 'reset', tag: 5, bootOptions: BOOT }],
  [0x02, { type: 'power-up', tag: 6, bootOptions: null }],
  [0x03, { type: 'power-down', tag: 7 }],
  [0x04, { type: 'power-cycle', tag: 8, bootOptions: BOOT }],
];
const SECURE_READS: AsfMessage[] = [
  { type: 'presence-ping', tag: 0x21 },
  { type: 'capabilities-request', tag: 0x22 },
  { type: 'system-state-request', tag: 0x23 },
  { type: 'presence-ping', tag: 0x24 },
];

type Mutation = 'as-is' | 'truncate' | 'bit-flip' | 'wrong-spi' | 'heartbeat-spi' | 'sequence' | 'extend' | 'random';
const MUTATIONS: Mutation[] = ['as-is', 'truncate', 'bit-flip', 'bit-flip', 'wrong-spi', 'heartbeat-spi', 'sequence', 'extend', 'random'];

describe('e2e: 100,000 mutated datagrams at UDP 623 and 664', function () {
  this.timeout(90000);
  let lab: Lab;
  let peer: UdpPeer;

  before(async () => {
    lab = new Lab('fuzz');
    await lab.startEmulator(['--nics', '1']);
    await lab.station(['sa', 'manual', 'nic-1']);
    await lab.station(['ping', 'nic-1']);
    peer = await UdpPeer.open();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') {
      console.log(`      emulator ${lab.emulatorAlive ? 'alive' : `exited (${lab.emulator?.exitCode ?? lab.emulator?.signalCode ?? 'gone'})`}; stderr tail:\n${lab.emulatorStderr.slice(-3000)}`);
    }
  });
  after(async () => {
    await peer?.close();
    await lab?.cleanup();
  });

  it('each kind of bad datagram is dropped and counted under its own reason', async () => {
    const nic = await lab.nic('nic-1');
    const addr = nic.address as string;
    const { clear: clearPort, secure: securePort } = nic.ports as { clear: number; secure: number };
    const sa = await stationActiveSa(lab, 'nic-1');
    const start = BigInt(nic.sa.active.inHighest) + 1n;
    const ahEp = { srcAddr: peer.address, srcPort: peer.port, dstAddr: addr, dstPort: securePort };
    const ping = encodeInnerUdp(peer.port, 623, encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 9 }));
    // Every case gets its own fresh sequence number: a mangled copy of an accepted packet is a replay first
    // (the window is checked before the ICV, RFC 4303 §3.4.3).
    // The test's own sync epoch at the NIC (a station's session has its own; wire/sync-frame.ts).
    const client = await syncedEndpoint(sa, { address: addr, port: securePort }, start);
    const fresh = () => client.seal(ping, ahEp);
    const good = fresh();
    const wrongKey = { ...sa, toNic: { ...sa.toNic, encKey: sa.toNic.encKey.map((b) => b ^ 0x55) } };
    const forgedEp = new SaEndpoint(wrongKey, 'station', { outStart: start + 100n, inFloor: 0n });
    const forged = forgedEp.seal(ping, ahEp, stationIv(client.epoch, start + 100n));
    const unknownSpi = fresh();
    unknownSpi.set([0x0b, 0xad, 0x5b, 0x10], 0);

    const cases: [string, Uint8Array, number, string][] = [
      ['wrong key', forged, securePort, 'icv'],
      ['truncated below an ESP header', fresh().subarray(0, 6), securePort, 'short'],
      ['truncated ICV', fresh().subarray(0, good.length - 5), securePort, 'icv'],
      ['bit flipped in the ciphertext', fresh().map((b, i) => (i === 20 ? b ^ 4 : b)), securePort, 'icv'],
      ['sequence number changed', fresh().map((b, i) => (i === 7 ? b ^ 0x40 : b)), securePort, 'icv'],
      ['unknown SPI', unknownSpi, securePort, 'spi'],
      ['clear: RMCP version 7', Uint8Array.from(encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 1 })).map((b, i) => (i === 0 ? 7 : b)), clearPort, 'version'],
      ['clear: truncated ASF header', encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 1 }).subarray(0, 9), clearPort, 'short'],
    ];
    assert.ok(await peer.request(good, securePort, addr, (x) => x.from.port === securePort), 'the unmodified packet is answered');
    cases.push(['replay of an accepted packet', good, securePort, 'replay']);
    for (const [what, bytes, port, reason] of cases) {
      const before = (await lab.nic('nic-1')).counters.dropped[reason] ?? 0;
      await peer.send(bytes, port, addr);
      await waitFor(`${what} counted as ${reason}`, async () => ((await lab.nic('nic-1')).counters.dropped[reason] ?? 0) === before + 1, 2000);
    }
  });

  // A datagram behind the heartbeat SPI 0xFFFFFFFF goes to the heartbeat path; with heartbeats off (policy
  // NONE, the default) or too short to name an SA it is still dropped and counted by reason.
  it('a garbage datagram with the heartbeat SPI is dropped and counted (heartbeats off)', async () => {
    const nic = await lab.nic('nic-1');
    const total = (s: any) =>
      Object.values(s.counters.dropped as Record<string, number>).reduce((a, v) => a + v, 0) +
      Object.values((s.heartbeat?.counters?.dropped ?? {}) as Record<string, number>).reduce((a, v) => a + v, 0);
    const before = total(nic);
    await peer.send(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9]), nic.ports.secure, nic.address);
    await peer.send(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 1]), nic.ports.secure, nic.address);
    await waitFor('both counted as dropped', async () => total(await lab.nic('nic-1')) === before + 2, 2000);
  });

  it('the emulator survives, nothing changes, every drop is counted by reason, and a secure ping still works', async () => {
    const rnd = prng(SEED);
    const nic = await lab.nic('nic-1');
    const addr = nic.address as string;
    const { clear: clearPort, secure: securePort } = nic.ports as { clear: number; secure: number };

    // Seeds on 664: valid requests under the station's SA, sequence numbers just above the NIC's high-water mark
    // (the station's next run starts a fresh reserved block above them, so it is not disturbed).
    const sa = await stationActiveSa(lab, 'nic-1');
    const client = await syncedEndpoint(sa, { address: addr, port: securePort }, BigInt(nic.sa.active.inHighest) + 1n);
    const ahEp = { srcAddr: peer.address, srcPort: peer.port, dstAddr: addr, dstPort: securePort };
    const requests = SECURE_READS.map((m) => client.seal(encodeInnerUdp(peer.port, 623, encodeRmcpAsf(0xff, m)), ahEp));
    const answers: Uint8Array[] = [];
    for (const r of requests) {
      const answer = await peer.request(r, securePort, addr, (x) => x.from.port === securePort, 2000);
      assert.ok(answer, 'a seed is a valid request: the NIC answers it');
      answers.push(answer.bytes); // valid ESP in the other direction: an SPI the NIC does not receive on
    }
    const secureSeeds = [...requests, ...answers];
    const clearSeeds = CLEAR_SEEDS.map(([seq, m]) => encodeRmcpAsf(seq, m));

    const before = await lab.nic('nic-1');
    const execLog0 = (await lab.control.get<unknown[]>('/v1/nics/nic-1/exec-log')).length;
    const sent: Record<string, number> = {};

    const mutate = (seed: Uint8Array, kind: Mutation, secure: boolean): Uint8Array => {
      const b = Uint8Array.from(seed);
      switch (kind) {
        case 'as-is':
          return b; // 664: a replay; 623: a valid message (pings answered, commands refused)
        case 'truncate':
          return b.subarray(0, rnd.int(b.length));
        case 'bit-flip': {
          for (let n = 1 + rnd.int(4); n > 0; n--) b[rnd.int(b.length)] ^= 1 << rnd.int(8);
          return b;
        }
        case 'wrong-spi':
          b.set(rnd.bytes(4), secure && b[0] === 50 && b[1] === 5 ? 4 : 0);
          return b;
        case 'heartbeat-spi':
          // The SPI reserved for heartbeats (DESIGN §2.3) with garbage behind it: the heartbeat path must cope too.
          b.set([0xff, 0xff, 0xff, 0xff], 0);
          return b;
        case 'sequence':
          // 664: a sequence number the window may accept, but it is in the GCM AAD, so the ICV fails (RFC 4106 §5)
          b.set(rnd.bytes(4), secure ? 4 : 0);
          return b;
        case 'extend': {
          const out = new Uint8Array(b.length + 1 + rnd.int(64));
          out.set(b);
          out.set(rnd.bytes(out.length - b.length), b.length);
          return out;
        }
        case 'random':
          return rnd.bytes(rnd.int(160));
      }
    };

    // Bounded rate: after every batch of 100, wait until the NIC has counted all but WINDOW of what was sent
    // (a loopback socket buffer holds only a few hundred datagrams). Some datagrams are ignored without being
    // counted (RMCP ACKs on 623): when the counters stop moving, the gap is taken as that drift.
    const WINDOW = 100;
    const processed = (s: any) =>
      s.counters.accepted.clear + s.counters.accepted.secure + Object.entries(s.counters.dropped).reduce((a, [, v]) => a + (v as number), 0);
    const base = processed(before);
    let drift = 0;
    const pace = async (sentSoFar: number) => {
      let last = -1;
      for (let i = 0; i < 1000; i++) {
        const p = processed(await lab.nic('nic-1')) - base;
        if (p + drift >= sentSoFar - WINDOW) return;
        if (p === last) {
          drift = sentSoFar - p;
          return;
        }
        last = p;
        await new Promise((r) => setTimeout(r, 2));
      }
    };

    const t0 = Date.now();
    const count = await peer.blast(TOTAL, (i) => {
      const secure = i % 2 === 0;
      const seeds = secure ? secureSeeds : clearSeeds;
      const kind = MUTATIONS[rnd.int(MUTATIONS.length)];
      const key = `${secure ? 664 : 623}/${kind}`;
      sent[key] = (sent[key] ?? 0) + 1;
      return { bytes: mutate(seeds[rnd.int(seeds.length)], kind, secure), port: secure ? securePort : clearPort, address: addr };
    }, { batch: 100, pace });
    const sendMs = Date.now() - t0;

    // Let the NIC work off its socket buffers: wait until the counters stop moving.
    let last = -1;
    const after = await waitFor('the NIC to settle', async () => {
      const s = await lab.nic('nic-1');
      const p = processed(s);
      const settled = p === last;
      last = p;
      return settled ? s : null;
    }, 20000, 250);

    const handled = processed(after) - base;
    console.log(`      fuzz seed 0x${SEED.toString(16)}: sent ${count} datagrams in ${sendMs} ms; NIC handled ${handled}`);
    console.log(`      sent by port/mutation: ${JSON.stringify(sent)}`);
    console.log(`      NIC counters: ${JSON.stringify(after.counters)}`);

    assert.equal(count, TOTAL);
    assert.ok(lab.emulatorAlive, 'the emulator process is alive');
    const { busyPoll, udpIo, ...health } = await lab.control.get<{ busyPoll: Record<string, number>; udpIo: string }>('/v1/health');
    // (sharedSockets: null, a 1-NIC fleet binds sockets of its own: nic-emulator/fleet.ts)
    assert.deepEqual(health, { pid: lab.ready!.pid, nics: 1, running: 1, failed: 0, booting: 0, sharedSockets: null });
    assert.equal(udpIo, defaultUdpIo(), 'the default socket layer: batched where lib/native is built');
    assert.deepEqual(after.udp, { io: udpIo, truncated: 0, sendQueueFull: 0 });
    // Busy polling is on by default; its counters depend on timing, only their shape is fixed.
    assert.deepEqual(Object.keys(busyPoll), ['maxUs', 'windowUs', 'hits', 'misses', 'backoffs']);
    assert.equal(busyPoll.maxUs, 200);
    for (const v of Object.values(busyPoll)) assert.ok(Number.isInteger(v) && v >= 0, JSON.stringify(busyPoll));
    assert.equal(after.state, 'running');
    assert.equal(after.host, before.host, 'host state unchanged');
    assert.deepEqual(
      [after.sa.active?.generation, after.sa.previous?.generation ?? null, after.sa.pending?.generation ?? null],
      [before.sa.active?.generation, before.sa.previous?.generation ?? null, before.sa.pending?.generation ?? null],
      'SA generations unchanged',
    );
    assert.equal(after.counters.executed, before.counters.executed, 'no command executed');
    assert.equal((await lab.control.get<unknown[]>('/v1/nics/nic-1/exec-log')).length, execLog0);
    assert.equal(after.counters.accepted.secure, before.counters.accepted.secure, 'no forged secure packet accepted');
    // Every datagram is counted, heartbeat-SPI garbage included (as unexpected_heartbeat, short or spi).
    const countable = TOTAL;
    assert.ok(handled >= 0.95 * countable, `the NIC counted ${handled} of ${countable} datagrams (bounded rate: few lost in socket buffers)`);
    const d = after.counters.dropped as Record<string, number>;
    assert.equal(d.internal ?? 0, 0, 'no datagram hit an uncoded error (a firmware bug)');
    for (const reason of ['replay', 'icv', 'spi']) assert.ok((d[reason] ?? 0) > 0, `drops counted as ${reason}: ${JSON.stringify(d)}`);
    const codec = ['short', 'length', 'version', 'class', 'iana', 'type', 'reserved'].reduce((a, k) => a + (d[k] ?? 0), 0);
    assert.ok(codec > 0, `malformed clear datagrams counted by codec reason: ${JSON.stringify(d)}`);
    assert.ok(after.counters.refusedClear > before.counters.refusedClear, 'clear power commands refused and counted');

    const ping = await lab.station(['ping', 'nic-1']);
    assert.equal(ping.response.type, 'presence-pong');
    assert.equal(ping.generation, before.sa.active.generation);
  });
});
