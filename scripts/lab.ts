/**
 * `npm start`: a lab on this machine with the embedded default — 4 emulated NICs, one station daemon, SQLite —
 * that stays up until Ctrl-C. Everything lives under ./var (the CLIs' defaults), so the commands printed at
 * the end work as they are, and a restarted lab keeps its SAs.
 *
 * As root, NICs get one loopback address each (127.0.1.1 ...) with the standard ports, so `rmcpping
 * 127.0.1.1` works. Otherwise they share 127.0.0.1 with a port per NIC (docs/EMULATOR.md, "Running without root").
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { spawnReady } from '../lib/spawn-ready.js';
import { restrictFileMode } from '../lib/secret-file.js';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, relative, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const EMULATOR = join(ROOT, 'bin/nic-emulator.js');
const STATION = join(ROOT, 'bin/mgmt-station.js');
const NICS = Number(process.env.LIFELINE_LAB_NICS ?? 4);
// For tests that run a lab beside a developer's: where var/ goes, the control API, the first NIC address.
const CWD = process.env.LIFELINE_LAB_DIR ?? ROOT;
// (port 0 picks a free one; the station commands then use the address the emulator reports).
const CONTROL = process.env.LIFELINE_LAB_CONTROL ?? '127.0.0.1:8623';
let control = CONTROL;
const FIRST = process.env.LIFELINE_LAB_FIRST_ADDRESS ?? '127.0.1.1';
// The station daemon's API and fleet page (its default, docs/FLEET-PAGE.md).
const STATION_CONTROL = process.env.LIFELINE_LAB_STATION_CONTROL ?? '127.0.0.1:8664';
const isRoot = process.getuid?.() === 0;
const children: ChildProcess[] = [];

function station(args: string[]): { ok: boolean; out: string; err: string } {
  const r = spawnSync(process.execPath, [STATION, ...args, '--emulator', control], { cwd: CWD, encoding: 'utf8', timeout: 60000 });
  return { ok: r.status === 0, out: r.stdout.trim(), err: r.stderr.trim() };
}

async function startChild(bin: string, args: string[], what: string): Promise<Record<string, unknown>> {
  const { child, ready } = await spawnReady(bin, args, what, { cwd: CWD, stdio: ['ignore', 'pipe', 'inherit'], timeoutMs: 30000 });
  children.push(child);
  child.once('exit', (code, signal) => {
    // Ctrl-C signals the whole process group: the child may exit before our own SIGINT handler has run. A turn of
    // the event loop lets that handler say the lab is stopping; a child that stops on its own then is no error.
    setTimeout(() => {
      if (stopping) return;
      if (code === 0) {
        process.stderr.write(`lab: ${what} stopped; stopping the lab\n`);
        shutdown(0);
      } else {
        process.stderr.write(`lab: ${what} exited (${code ?? signal}); stopping the lab\n`);
        shutdown(1);
      }
    }, 50);
  });
  return ready;
}

let stopping = false;
function shutdown(code: number): void {
  if (stopping) return;
  stopping = true;
  process.exitCode = code;
  for (const c of children) c.kill('SIGTERM');
  setTimeout(() => process.exit(code), 500).unref();
}

async function main(): Promise<void> {
  // From the start: a Ctrl-C while the lab comes up stops it quietly too.
  process.on('SIGINT', () => shutdown(0));
  process.on('SIGTERM', () => shutdown(0));
  mkdirSync(join(CWD, 'var'), { recursive: true, mode: 0o700 }); // the store, the cluster key, the PSK, the EEPROMs
  const addressing = isRoot ? ['--first-address', FIRST] : ['--port-base', '16230'];
  const emu = await startChild(EMULATOR, ['start', '--nics', String(NICS), '--data-dir', 'var/nics', '--control', CONTROL, '--json', ...addressing], 'nic-emulator');
  control = String(emu.control);
  // Enrol every NIC the station does not hold an SA for yet (a restarted lab keeps its SAs).
  const psk = join(CWD, 'var/psk.hex');
  if (!existsSync(psk)) writeFileSync(psk, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  else restrictFileMode(psk); // a PSK file an older lab left readable
  const listed = station(['list', '--json']);
  const known: { id: string; sas: { state: string }[] }[] = listed.ok ? JSON.parse(listed.out) : [];
  for (let i = 1; i <= NICS; i++) {
    const id = `nic-${i}`;
    if (known.find((n) => n.id === id && n.sas.some((s) => s.state === 'active'))) continue;
    const r = station(['enroll', id, '--psk-file', psk]);
    if (!r.ok) process.stderr.write(`lab: enrolling ${id} failed: ${r.err}\n`);
  }
  const st = await startChild(STATION, ['serve', '--json', '--refresh-interval', '3600', '--control', STATION_CONTROL], 'mgmt-station serve');
  // The daemon's credential, from its announce file (0600, ours): the page acts only with it (docs/FLEET-PAGE.md).
  let token = '';
  try {
    token = String((JSON.parse(readFileSync(String(st.announce), 'utf8')) as { token?: string }).token ?? '');
  } catch {
    /* no credential to print: the page still shows the fleet */
  }
  const ping = station(['ping', 'nic-1']);
  if (stopping) return; // a child died while we set up; shutdown() has said which
  process.stdout.write(`
Lifeline lab is up: ${emu.running} NICs (${emu.first} .. ${emu.last}), emulator control http://${emu.control}
Station daemon 'station-1' on http://${st.control}; store sqlite:var/station.db, cluster key var/cluster.key

Fleet page   http://${st.control}/
  to act from it (power cycle, refresh), open http://${st.control}/#token=${token || 'TOKEN'}
  (the daemon's credential: this address is for you alone; it changes at every start)
Metrics      http://${emu.control}/metrics (emulator), http://${st.control}/metrics (station: Bearer credential in
             ${relative(CWD, String(st.announce).replace(/\.daemon\.json$/, '.metrics-token'))})
${ping.ok ? 'Secure ping nic-1: ' + ping.out : 'Secure ping nic-1 FAILED: ' + ping.err}

Try, in another terminal:
  ./bin/mgmt-station.js state nic-1              # System State over ESP on UDP 664
  ./bin/nic-emulator.js host nic-1 hang          # hang the host ...
  ./bin/mgmt-station.js power-cycle nic-1        # ... the NIC still takes a secure power cycle
  ./bin/mgmt-station.js refresh nic-1            # two-phase SA refresh (the host must be up)
  ./bin/nic-emulator.js status                   # host states, SAs, counters
${isRoot ? '  rmcpping -c 3 127.0.1.1                       # FreeIPMI against the clear port 623\n' : ''}Ctrl-C stops the lab.
`);
}

main().catch((e) => {
  process.stderr.write(`lab: ${(e as Error).message}\n`);
  shutdown(1);
});
