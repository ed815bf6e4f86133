/**
 * A test's own station side of an SA, as a station has it: synced with the NIC first (lib/sync-client.ts), so it
 * owns a sync epoch there, and sealing with that epoch in the IV (wire/sync-iv.ts). For tests that put ESP on the
 * wire themselves (fuzzing, crafted packets).
 */
import { SaEndpoint } from '../../wire/sa-endpoint.js';
import { stationIv } from '../../wire/sync-iv.js';
import { syncWithNic } from '../../lib/sync-client.js';
import type { AhEndpoints } from '../../wire/ah.js';
import type { SaPair } from '../../wire/sa.js';

export interface SyncedEndpoint {
  ep: SaEndpoint;
  epoch: number;
  /** Seal the next packet under the epoch (a fresh sequence number each time). */
  seal(inner: Uint8Array, ah: AhEndpoints): Uint8Array;
}

/** Sync with the NIC at `nic` (its secure port) under `sa`, starting at or above `minP`. */
export async function syncedEndpoint(sa: SaPair, nic: { address: string; port: number }, minP = 1n): Promise<SyncedEndpoint> {
  const s = await syncWithNic(sa, nic, { minP });
  const ep = new SaEndpoint(sa, 'station', { outStart: s.p, inFloor: 0n });
  return { ep, epoch: s.epoch, seal: (inner, ah) => ep.seal(inner, ah, stationIv(s.epoch, ep.nextOutSeq)) };
}
