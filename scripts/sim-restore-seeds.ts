/**
 * The seeds of the simulator's default run whose fault schedule holds an EEPROM restore together with a rollback of
 * a NIC's sync-epoch row in the store (the precondition of the alert-IV reuse the run at 91d63e9 found; docs/SIMULATION.md
 * "Results"), found by replaying only each seed's fault PRNG as sim/world.ts draws it (a second per 20,000 seeds);
 * with --run, those seeds (and any given with --also) are then run in full and the violating ones printed.
 *
 *   node dist/scripts/sim-restore-seeds.js 1..100000 [--run] [--also 6799,...]
 */
import { Prng } from '../sim/prng.js';
import { DEFAULT_FAULTS, World, type FaultRates } from '../sim/world.js';

function candidates(from: number, to: number): number[] {
  const rates = DEFAULT_FAULTS;
  const total = Object.values(rates).reduce((a, b) => a + b, 0);
  const out: number[] = [];
  for (let seed = from; seed <= to; seed++) {
    // As World's constructor: the network's stream, then the faults' (its first draw: which side this run restores).
    const rnd = new Prng(seed);
    rnd.split();
    const fr = rnd.split();
    if (fr.chance(0.5)) continue; // a store-restore run
    let t = 0;
    let rollback = false;
    let restore = false;
    // As World.scheduleFaults (20 s of faults) and World.fault: each fault's own stream picks the NIC, then its kind.
    for (;;) {
      t += (-Math.log(1 - fr.next()) / total) * 1000;
      if (t >= 20_000) break;
      let x = fr.next() * total;
      let kind: keyof FaultRates = 'crash';
      for (const [k, v] of Object.entries(rates) as [keyof FaultRates, number][]) {
        if ((x -= v) < 0) {
          kind = k;
          break;
        }
      }
      const r = new Prng(fr.u32());
      if (kind === 'restore') restore = true;
      if (kind === 'tamper') {
        r.int(2);
        if (r.pick(['delete-row', 'edit-outcome', 'old-seq-row', 'old-sync-row']) === 'old-sync-row') rollback = true;
      }
    }
    if (rollback && restore) out.push(seed);
  }
  return out;
}

async function main(args: string[]): Promise<void> {
  const m = /^(\d+)\.\.(\d+)$/.exec(args[0] ?? '');
  if (!m) throw new Error('usage: sim-restore-seeds A..B [--run] [--also N,N,...]');
  const seeds = candidates(Number(m[1]), Number(m[2]));
  const at = args.indexOf('--also');
  if (at >= 0) seeds.push(...(args[at + 1] ?? '').split(',').filter(Boolean).map(Number));
  process.stdout.write(`${seeds.length} seeds: ${seeds.join(' ')}\n`);
  if (!args.includes('--run')) return;
  const bad: number[] = [];
  for (const seed of seeds) {
    const r = await new World({ seed, trace: false }).run();
    if (!r.ok) {
      bad.push(seed);
      process.stdout.write(`${seed}: ${r.violation}\n`);
    }
  }
  process.stdout.write(`ran ${seeds.length} seeds; ${bad.length} violations${bad.length ? `: ${bad.join(' ')}` : ''}\n`);
  process.exitCode = bad.length ? 1 : 0;
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exitCode = 2;
});
