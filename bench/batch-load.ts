/**
 * The bench's load generator for the in-flight workloads: `inFlight` requests outstanding, sent and received in
 * batches through lib/native (recvmmsg/sendmmsg), on a socket it polls without sleeping for the whole round.
 *
 * Why not the dgram client of bench/udp-load.ts: a load generator must not be the bottleneck of what it
 * measures. The dgram client costs about as much CPU per request as the responders it loads (10-12 µs on this
 * machine kind), so with it every responder, ipmi_sim and the emulator alike, ran at the client's own limit
 * (about 90,000 requests/s) and the throughput ratio was a coin toss around 1 (docs/PERFORMANCE.md, "Batched
 * UDP"). This one costs a few µs per request, so each responder runs at its own limit. `npm run bench --
 * --load-client dgram` still measures with the dgram client, for comparison.
 *
 * It runs synchronously for the round (warm-up + measurement + a short drain): the bench process does
 * nothing else meanwhile, and it has its own vCPU (bench/processes.ts pinning).
 */
import { udpBatchAddon, batchUdpUnavailable, errnoName, ipv4Value, META, SLOT, type UdpBatchAddon } from '../lib/batch-udp.js';
import { summarize } from './stats.js';
import type { Probe, Target, WindowResult } from './udp-load.js';

/** Datagrams per system call: the most lib/native takes (BATCH_MAX). */
const BATCH = 64;
const LOST_AFTER_MS = 500;
const DRAIN_MS = 100;

export interface BatchClient {
  window(to: Target, probe: Probe, inFlight: number, durationMs: number, warmupMs: number): WindowResult;
  close(): void;
}

/** A batched client socket bound to `bindAddress` (any port); throws with the reason when lib/native is not built. */
export function openBatchClient(bindAddress = '127.0.0.1'): BatchClient {
  const nat: UdpBatchAddon | null = udpBatchAddon();
  if (!nat) throw new Error(`batched load generator unavailable: ${batchUdpUnavailable()}`);
  const fd = nat.open(bindAddress, 0, 0);
  if (fd < 0) throw new Error(`cannot bind a load generator socket on ${bindAddress} (${errnoName(fd)})`);
  const rbuf = new Uint8Array(BATCH * SLOT);
  const rmeta = new Int32Array(BATCH * META);
  const sbuf = new Uint8Array(BATCH * SLOT);
  const smeta = new Int32Array(BATCH * META);
  let closed = false;

  const window = (to: Target, probe: Probe, inFlight: number, durationMs: number, warmupMs: number): WindowResult => {
    if (closed) throw new Error('the load generator socket is closed');
    if (inFlight < 1 || inFlight > 200) throw new RangeError('expected 1..200 requests in flight, got ' + inFlight);
    const toAddr = ipv4Value(to.address);
    if (toAddr === -1) throw new RangeError(`not an IPv4 address: ${to.address}`);
    const sentAt = new Float64Array(256).fill(-1);
    let tag = 0;
    let queued = 0;
    let sent = 0;
    let completed = 0;
    let lost = 0;
    const lat: number[] = [];
    const flush = () => {
      if (queued === 0) return;
      nat.send(fd, sbuf, SLOT, queued, smeta); // a datagram that failed is never answered: the sweep counts it lost
      queued = 0;
    };
    const queue = (now: number) => {
      if (queued === BATCH) flush();
      do tag = (tag + 1) & 0xff;
      while (sentAt[tag]! >= 0);
      const bytes = probe.request(tag);
      sbuf.set(bytes, queued * SLOT);
      smeta[queued * META] = bytes.length;
      smeta[queued * META + 1] = toAddr;
      smeta[queued * META + 2] = to.port;
      queued++;
      sentAt[tag] = now;
      sent++;
    };
    const start = performance.now();
    const measureFrom = start + warmupMs;
    const measureTo = measureFrom + durationMs;
    const end = measureTo + DRAIN_MS;
    let nextSweep = start + 100;
    for (let k = 0; k < inFlight; k++) queue(start);
    flush();
    let now = start;
    while (now < end) {
      const n = nat.recv(fd, rbuf, SLOT, BATCH, rmeta);
      now = performance.now();
      const measuring = now >= measureFrom && now < measureTo;
      const replace = now < measureTo;
      for (let i = 0; i < n; i++) {
        const len = rmeta[i * META]!;
        if (len < 0) continue;
        const t = probe.answerTag(rbuf.subarray(i * SLOT, i * SLOT + len));
        if (t < 0 || sentAt[t]! < 0) continue;
        if (measuring) {
          completed++;
          if ((completed & 7) === 0) lat.push((now - sentAt[t]!) * 1000);
        }
        sentAt[t] = -1;
        if (replace) queue(now);
      }
      flush();
      if (now >= nextSweep) {
        nextSweep = now + 100;
        for (let t = 0; t < 256; t++) {
          if (sentAt[t]! >= 0 && now - sentAt[t]! > LOST_AFTER_MS) {
            sentAt[t] = -1;
            lost++;
            if (now < measureTo) queue(now);
          }
        }
        flush();
      }
    }
    return { requestsPerSecond: completed / (durationMs / 1000), completed, lost, seconds: durationMs / 1000, inFlight, latency: summarize(lat), samples: lat, sent };
  };

  return {
    window,
    close: () => {
      if (closed) return;
      closed = true;
      nat.close(fd);
    },
  };
}
