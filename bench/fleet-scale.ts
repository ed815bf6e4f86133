/**
 * Fleet scale: start-up time and resident memory per NIC with N NICs in one `nic-emulator` process.
 *
 * Memory per NIC = (VmRSS of the N-NIC process - VmRSS of a 1-NIC process) / (N - 1), both read from
 * /proc/PID/status once the ready line is out and the process has settled. Start-up = the emulator's own
 * `startMs` (fleet.start(): create or load every EEPROM image, bind every socket, start host agents; with lazy boot,
 * nic-emulator/fleet.ts, only the registration before the ready line); `wallMs` adds Node's start and module loading,
 * from spawn to the ready line, and with lazy boot on to every NIC booted (bench/processes.ts startEmulator), so that
 * it times the same work as before lazy boot, and memory is read from the booted fleet. "cold" = fresh data
 * directory (every EEPROM image formatted), "warm" = a restart on the images the cold start wrote.
 *
 * As root (address-per-NIC) a fleet of 1,000 NICs or more shares three sockets (nic-emulator/shared-ports.ts) and a
 * NIC holds no file descriptor. Otherwise (port-per-NIC) each NIC holds its sockets, so N is bounded by
 * RLIMIT_NOFILE: when the hard limit cannot hold the requested N, the largest N that fits is measured
 * instead and the result says so (the limit cannot be raised without CAP_SYS_RESOURCE).
 */
import { startEmulator, stopChild, rssKiB, openFds, fdLimit, tempDir, memoryBackedBase, type Emulator } from './processes.js';
import { figure, type Figure } from './stats.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export interface FleetPoint {
  requested: number;
  nics: number;
  limitedBy?: string;
  addressing: string;
  coldStart: Figure;
  coldWall: Figure;
  warmStart: Figure;
  rssPerNic: Figure;
  rssPerNicWarm: Figure;
  rssTotal: Figure;
  fdsPerNic: number;
}

export interface FleetResult { baselineRss: Figure; baselineFds: number; fdLimit: { soft: number; hard: number }; eepromStore: string; points: FleetPoint[] }

function addressing(n: number, salt: number): string[] {
  if (isRoot) return ['--first-address', `127.${200 + ((process.pid + salt) % 50)}.0.1`];
  // 3 ports per NIC below the ephemeral range (32768+), so no client socket can hold one of them.
  return ['--port-base', String(Math.max(1100, 32700 - 3 * n))];
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measured(n: number, dir: string, salt: number, timeoutMs: number): Promise<{ emu: Emulator; rss: number; fds: number }> {
  const emu = await startEmulator(['--nics', String(n), '--data-dir', dir, ...addressing(n, salt)], timeoutMs);
  if (emu.ready.running !== n) {
    await stopChild(emu.child);
    throw new Error(`only ${emu.ready.running} of ${n} NICs started: ${emu.stderr().slice(-500)}`);
  }
  await settle(700);
  return { emu, rss: rssKiB(emu.ready.pid), fds: openFds(emu.ready.pid) };
}

export async function measureFleet(sizes: number[], log: (s: string) => void): Promise<FleetResult> {
  const limit = fdLimit();
  const store = memoryBackedBase();
  log('  baseline: 1 NIC');
  const base = await measured(1, tempDir('fleet-1', store.dir), 0, 20000);
  await stopChild(base.emu.child);
  const points: FleetPoint[] = [];
  let fdsPerNic = 4;
  for (const requested of sizes) {
    let n = requested;
    let limitedBy: string | undefined;
    const need = base.fds + Math.ceil(fdsPerNic * (n - 1)) + 32;
    if (need > limit.hard) {
      const fit = (limit.hard - base.fds - 32) / fdsPerNic;
      n = Math.max(2, Math.floor(fit / 500) * 500 || Math.floor(fit / 100) * 100);
      limitedBy = `RLIMIT_NOFILE hard limit ${limit.hard}: ${requested} NICs need about ${need} file descriptors (${fdsPerNic} per NIC: its UDP sockets and EEPROM file), so ${n} NICs were measured`;
      log(`  ${requested} NICs do not fit the fd limit (${limit.hard}); measuring ${n}`);
    }
    const dir = tempDir(`fleet-${n}`, store.dir);
    log(`  ${n} NICs, cold start`);
    const cold = await measured(n, dir, n, 60000);
    fdsPerNic = Math.round(((cold.fds - base.fds) / (n - 1)) * 100) / 100;
    await stopChild(cold.emu.child, 15000);
    log(`  ${n} NICs, warm restart`);
    const warm = await measured(n, dir, n, 60000);
    await stopChild(warm.emu.child, 15000);
    const sockets = isRoot && n >= 1000 ? 'shared sockets: three for the fleet' : 'the clear socket each (664 is bound once a NIC holds an SA, the IKE port once it is enrolled)';
    const wl = `${n} NICs in one nic-emulator process (${isRoot ? 'address-per-NIC' : 'port-per-NIC'}, fresh NICs with hosts up: ${sockets}, EEPROM files on ${store.kind}), 1 NIC baseline subtracted`;
    points.push({
      requested,
      nics: n,
      ...(limitedBy ? { limitedBy } : {}),
      addressing: isRoot ? 'address-per-NIC' : 'port-per-NIC',
      coldStart: figure(cold.emu.ready.startMs, 'ms', `${wl}; fleet.start() with fresh EEPROM images (format), emulator's startMs`),
      coldWall: figure(cold.emu.wallMs, 'ms', `${wl}; spawn to ready line, fresh EEPROM images`),
      warmStart: figure(warm.emu.ready.startMs, 'ms', `${wl}; fleet.start() loading existing EEPROM images, emulator's startMs`),
      rssPerNic: figure((cold.rss - base.rss) / (n - 1), 'KiB/NIC', `${wl}; (VmRSS(N) - VmRSS(1)) / (N - 1) after the cold start`),
      rssPerNicWarm: figure((warm.rss - base.rss) / (n - 1), 'KiB/NIC', `${wl}; (VmRSS(N) - VmRSS(1)) / (N - 1) after the warm restart`),
      rssTotal: figure(cold.rss / 1024, 'MiB', `${wl}; VmRSS after the cold start`),
      fdsPerNic,
    });
  }
  return { baselineRss: figure(base.rss / 1024, 'MiB', '1-NIC nic-emulator process, VmRSS after ready'), baselineFds: base.fds, fdLimit: limit, eepromStore: store.kind, points };
}
