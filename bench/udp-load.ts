/**
 * Closed-loop UDP load against one responder (an emulated NIC or ipmi_sim): sequential round trips, and a
 * fixed number of requests in flight for a fixed time. The client is callback-driven (no promise per
 * request) so its own overhead is as small as Node allows, and it is the same for every target measured.
 *
 * A request is identified by the ASF message tag (one byte), so at most 256 may be in flight; a request
 * without an answer after `lostAfterMs` is counted lost and replaced, so a dropped datagram cannot stall
 * the window.
 *
 * Like the station (mgmt-station/udp-mux.ts), the client polls for an answer it awaits instead of sleeping
 * (lib/answer-poll.ts), for up to the AnswerPoll's window after each send; an AnswerPoll of 0 µs sleeps.
 */
import dgram from 'node:dgram';
import { summarize, type LatencySummary } from './stats.js';
import type { AnswerPoll } from '../lib/answer-poll.js';

/** What goes on the wire: request bytes for a tag, and which tag an arriving datagram answers (-1: none). */
export interface Probe {
  request(tag: number): Uint8Array;
  answerTag(datagram: Uint8Array): number;
}

export interface Target { address: string; port: number }

export interface SequentialResult extends LatencySummary { lost: number; unit: 'µs'; samples: number[] }
export interface WindowResult { requestsPerSecond: number; completed: number; lost: number; seconds: number; inFlight: number; latency: LatencySummary; samples: number[]; /** every request sent, warm-up included */ sent: number }

const LOST_AFTER_MS = 500;

/**
 * A client socket on loopback, connected to `to` when given (the kernel then filters other senders and
 * send() skips the per-datagram address lookup); closed by the caller.
 */
export async function openClient(bindAddress = '127.0.0.1', to?: Target): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: 'udp4' });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind({ address: bindAddress, port: 0 }, () => {
      s.removeListener('error', reject);
      resolve();
    });
  });
  try {
    s.setRecvBufferSize(1 << 20);
  } catch {
    /* the default buffer is enough for 32 in flight */
  }
  if (to) {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.connect(to.port, to.address, () => {
        s.removeListener('error', reject);
        resolve();
      });
    });
  }
  return s;
}

/** send() for a connected or an unconnected socket. */
function sender(sock: dgram.Socket, to: Target): (b: Uint8Array) => void {
  try {
    sock.remoteAddress();
    return (b) => sock.send(b);
  } catch {
    return (b) => sock.send(b, to.port, to.address);
  }
}

/**
 * `warmup` unrecorded round trips, then `count` recorded ones, one at a time. Latencies in µs, from the
 * send of a ready-made request (an ESP request is sealed before the clock starts, as a ping is built)
 * to the answer recognised (an ESP answer authenticated and decrypted: that is part of the round trip).
 */
export function sequential(sock: dgram.Socket, to: Target, probe: Probe, count: number, warmup: number, poll: AnswerPoll): Promise<SequentialResult> {
  return new Promise((resolve) => {
    const out = sender(sock, to);
    const samples = new Float64Array(count);
    const total = warmup + count;
    let i = 0;
    let lost = 0;
    let tag = 0;
    let t0 = 0;
    let timer: NodeJS.Timeout | null = null;
    const send = () => {
      tag = (tag + 1) & 0xff;
      const bytes = probe.request(tag);
      if (timer) clearTimeout(timer);
      timer = setTimeout(onLost, LOST_AFTER_MS);
      t0 = performance.now();
      out(bytes);
      poll.open();
      poll.sent();
    };
    const next = () => {
      poll.close();
      i++;
      if (i < total) send();
      else finish();
    };
    const onLost = () => {
      timer = null;
      lost++;
      if (i >= warmup) samples[i - warmup] = NaN;
      next();
    };
    const onMessage = (msg: Buffer) => {
      // The clock stops once the answer is recognised (for ESP: authenticated and decrypted).
      if (probe.answerTag(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength)) !== tag) return;
      const t1 = performance.now();
      if (i >= warmup) samples[i - warmup] = (t1 - t0) * 1000;
      next();
    };
    const finish = () => {
      if (timer) clearTimeout(timer);
      sock.removeListener('message', onMessage);
      const got = Array.from(samples).filter((x) => !Number.isNaN(x));
      resolve({ ...summarize(got), lost, unit: 'µs', samples: got });
    };
    sock.on('message', onMessage);
    send();
  });
}

/**
 * `inFlight` requests outstanding for `warmupMs` + `durationMs`; only answers that arrive in the measured
 * interval count. Returns completed requests per second (and the latency under that load, in µs).
 */
export function window(sock: dgram.Socket, to: Target, probe: Probe, inFlight: number, durationMs: number, warmupMs: number, poll: AnswerPoll): Promise<WindowResult> {
  if (inFlight < 1 || inFlight > 200) throw new RangeError('expected 1..200 requests in flight, got ' + inFlight);
  return new Promise((resolve) => {
    const out = sender(sock, to);
    const sentAt = new Float64Array(256).fill(-1);
    let tag = 0;
    let completed = 0;
    let sent = 0;
    let lost = 0;
    let measuring = false;
    let stopping = false;
    let tStart = 0;
    const lat: number[] = [];
    const send = () => {
      // Next free tag (at most inFlight of the 256 are in use).
      do tag = (tag + 1) & 0xff;
      while (sentAt[tag] >= 0);
      sentAt[tag] = performance.now();
      sent++;
      out(probe.request(tag));
      poll.open();
      poll.sent();
    };
    const onMessage = (msg: Buffer) => {
      const now = performance.now();
      const t = probe.answerTag(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
      if (t < 0 || sentAt[t] < 0) return;
      if (measuring) {
        completed++;
        if ((completed & 7) === 0) lat.push((now - sentAt[t]) * 1000);
      }
      sentAt[t] = -1;
      poll.close();
      if (!stopping) send();
    };
    const sweep = setInterval(() => {
      const now = performance.now();
      for (let t = 0; t < 256; t++) {
        if (sentAt[t] >= 0 && now - sentAt[t] > LOST_AFTER_MS) {
          sentAt[t] = -1;
          poll.close();
          lost++;
          if (!stopping) send();
        }
      }
    }, 100);
    sock.on('message', onMessage);
    for (let k = 0; k < inFlight; k++) send();
    setTimeout(() => {
      measuring = true;
      tStart = performance.now();
      setTimeout(() => {
        const seconds = (performance.now() - tStart) / 1000;
        measuring = false;
        stopping = true;
        // Let the last answers drain, so they are not taken for the next measurement's.
        setTimeout(() => {
          clearInterval(sweep);
          sock.removeListener('message', onMessage);
          for (let t = 0; t < 256; t++) if (sentAt[t] >= 0) poll.close(); // unanswered: no longer awaited
          resolve({ requestsPerSecond: completed / seconds, completed, lost, seconds, inFlight, latency: summarize(lat), samples: lat, sent });
        }, 100);
      }, durationMs);
    }, warmupMs);
  });
}
