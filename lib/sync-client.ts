/**
 * A one-shot resynchronisation (wire/sync-frame.ts) from a client that holds an SA but is not a station: the bench's
 * load generator and the tests that speak ESP to an emulated NIC themselves. It gets the client a sync epoch of its
 * own, live at the NIC, and the first sequence number to use in it; the client then seals with
 * IV = stationIv(epoch, seq) (wire/sync-iv.ts). The station itself syncs in mgmt-station/core/session.ts.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { equalBytes } from '../common/bytes.js';
import { LifelineError } from '../common/errors.js';
import { decodeSync, encodeSync, SYNC_NONCE_LENGTH, type SyncFrame } from '../wire/sync-frame.js';
import type { SaPair } from '../wire/sa.js';

export interface SyncedEpoch {
  epoch: number;
  /** The first outbound sequence number of the epoch (the NIC's window starts above P - 1). */
  p: bigint;
  /** The NIC's next outbound sequence number. */
  nicOutNext: bigint;
}

export interface SyncOptions {
  /** Local address for the sync's own socket (default 127.0.0.1). */
  bind?: string;
  /** Lowest first sequence number wanted (default: above what the NIC has seen). */
  minP?: bigint;
  /** The highest epoch this client knows the NIC issued (default 0). */
  minEpoch?: number;
  /** End every other epoch at the NIC. */
  exclusive?: boolean;
  timeoutMs?: number;
}

export async function syncWithNic(sa: SaPair, nic: { address: string; port: number }, o: SyncOptions = {}): Promise<SyncedEpoch> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind({ address: o.bind ?? '127.0.0.1', port: 0 }, () => {
      s.removeListener('error', reject);
      resolve();
    });
  });
  const ns = new Uint8Array(randomBytes(SYNC_NONCE_LENGTH));
  let got: ((f: SyncFrame) => void) | null = null;
  s.on('message', (msg) => {
    try {
      got?.(decodeSync(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), sa, false));
    } catch {
      /* not ours, or not authentic: ignored */
    }
  });
  const deadline = Date.now() + (o.timeoutMs ?? 5000);
  const ask = async <T extends SyncFrame>(bytes: Uint8Array, want: (f: SyncFrame) => f is T, what: string): Promise<T> => {
    let interval = 100;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new LifelineError('E_TIMEOUT', `no answer from ${nic.address}:${nic.port} to the sync ${what}`);
      s.send(bytes, nic.port, nic.address);
      const f = await new Promise<T | null>((r) => {
        const t = setTimeout(() => r(null), Math.min(interval, left));
        got = (x) => {
          if (want(x)) {
            clearTimeout(t);
            r(x);
          }
        };
      });
      if (f) return f;
      interval = Math.min(interval * 2, 1000);
    }
  };
  try {
    const ch = await ask(encodeSync(sa, { kind: 'hello', ns, nn: new Uint8Array(SYNC_NONCE_LENGTH) }),
      (f): f is Extract<SyncFrame, { kind: 'challenge' }> => f.kind === 'challenge' && equalBytes(f.ns, ns), 'HELLO');
    const p = o.minP !== undefined && o.minP > ch.inHigh + 1n ? o.minP : ch.inHigh + 1n;
    const done = await ask(encodeSync(sa, { kind: 'set', ns, nn: ch.nn, minEpoch: (o.minEpoch ?? 0) + 1, exclusive: o.exclusive ?? false, p, s: 0n, queries: [] }),
      (f): f is Extract<SyncFrame, { kind: 'done' }> => f.kind === 'done' && equalBytes(f.nn, ch.nn), 'SET');
    return { epoch: done.epoch, p, nicOutNext: done.outNext };
  } finally {
    await new Promise<void>((r) => s.close(() => r()));
  }
}
