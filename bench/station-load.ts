/**
 * The station's own secure round trip: a StationContext in the bench process (SQLite store in a temporary
 * directory, its own cluster key), a NIC keyed by manual keying through the emulator's control API
 * (StationContext.installManualSa, as `mgmt-station sa manual NIC` does), and System State reads through the
 * station's NicSession and UdpMux, as a daemon runs `mgmt-station state NIC`. Everything the station does per
 * verb is inside the clock: sealing the request, sequence-number reservations in the store, retransmission
 * timers, opening the answer, and its answer polling (lib/answer-poll.ts). The CLI's process start is not.
 */
import { join } from 'node:path';
import { StationContext, emulatorControl } from '../mgmt-station/context.js';
import { createClusterKeyFile } from '../mgmt-station/store/cluster-key.js';
import type { NicSession } from '../mgmt-station/core/session.js';
import type { ControlClient } from '../lib/control-client.js';
import { randomSaPair } from './probes.js';
import { tempDir } from './processes.js';

export interface StationLoad {
  /** `warmup` unrecorded, then `count` recorded System State reads one at a time; µs per read. */
  sequential(count: number, warmup: number): Promise<{ samples: number[]; lost: number }>;
  close(): Promise<void>;
}

/** A read that gets no answer (after the session's own retransmissions) within this long is counted lost. */
const READ_TIMEOUT_MS = 500;

/** Key `nicId` from a new station and return its read loop; `busyPollUs` is the station's --busy-poll-us. */
export async function openStationLoad(control: ControlClient, nicId: string, busyPollUs: number): Promise<StationLoad> {
  const dir = tempDir('station');
  const keyFile = join(dir, 'cluster.key');
  createClusterKeyFile(keyFile);
  // A lease far longer than the bench, so that no renewal falls inside a measured round.
  const ctx = await StationContext.open({ store: `sqlite:${join(dir, 'station.db')}`, keyFile, stationId: 'bench', leaseMs: 3_600_000, create: true, busyPollUs });
  let session: NicSession;
  try {
    await ctx.installManualSa(emulatorControl(control), nicId, randomSaPair('esp', 'aes-gcm-16'));
    session = await ctx.session(nicId);
  } catch (e) {
    await ctx.close();
    throw e;
  }
  return {
    async sequential(count, warmup) {
      const samples: number[] = [];
      let lost = 0;
      for (let i = 0; i < warmup + count; i++) {
        const t0 = performance.now();
        try {
          await session.read('system-state-request', READ_TIMEOUT_MS);
        } catch {
          lost++;
          continue;
        }
        if (i >= warmup) samples.push((performance.now() - t0) * 1000);
      }
      return { samples, lost };
    },
    close: () => ctx.close(),
  };
}
