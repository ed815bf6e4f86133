/**
 * `node dist/scripts/screenshots.js [OUT_DIR]`: the fleet page's pictures in docs/ (docs/FLEET-PAGE.md). Brings up a
 * private lab (8 NICs, one station daemon, in a temporary directory, on 127.0.182.50.. with the control APIs on
 * 127.0.182.1:18250-18252), gives its hosts something to show (a hang, a power-down, a suspend, commands), and takes
 * two PNGs with headless Chromium: the fleet (docs/fleet-page.png) and a NIC (docs/fleet-page-nic.png). Stops
 * everything it started, also on failure.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnReady } from '../lib/spawn-ready.js';
import { launchChromium } from '../lib/chromium.js';

const ROOT = resolve(import.meta.dirname, '../..');
const EMULATOR = join(ROOT, 'bin/nic-emulator.js');
const STATION = join(ROOT, 'bin/mgmt-station.js');
const OUT = resolve(process.argv[2] ?? join(ROOT, 'docs'));
const CONTROL = '127.0.182.1:18250';
const PAGE = '127.0.182.1:18252';

const dir = mkdtempSync(join(tmpdir(), 'lifeline-screenshots-'));
const children: ChildProcess[] = [];

function run(bin: string, args: string[]): string {
  const extra = bin === STATION ? ['--store', `sqlite:${join(dir, 'station.db')}`, '--cluster-key', join(dir, 'cluster.key'), '--emulator', CONTROL] : ['--control', CONTROL];
  const r = spawnSync(process.execPath, [bin, ...args, ...extra], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const emu = await spawnReady(EMULATOR, ['start', '--json', '--nics', '8', '--first-address', '127.0.182.50', '--control', CONTROL, '--data-dir', join(dir, 'nics'), '--boot-delay', '300'], 'nic-emulator', { cwd: dir, timeoutMs: 30_000 });
  children.push(emu.child);
  const psk = join(dir, 'psk.hex');
  writeFileSync(psk, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  run(STATION, ['enroll', 'all', '--psk-file', psk]);
  const st = await spawnReady<{ announce: string }>(STATION, ['serve', '--json', '--poll-interval', '300', '--control', PAGE, '--listen', '127.0.182.1:18251', '--store', `sqlite:${join(dir, 'station.db')}`, '--cluster-key', join(dir, 'cluster.key'), '--emulator', CONTROL], 'mgmt-station serve', { cwd: dir, timeoutMs: 30_000 });
  children.push(st.child);
  const token = (JSON.parse(readFileSync(st.ready.announce, 'utf8')) as { token: string }).token;
  for (const verb of ['state', 'power-cycle', 'ping']) run(STATION, [verb, 'nic-2']);
  run(STATION, ['refresh', 'nic-2']);
  run(EMULATOR, ['host', 'nic-2', 'hang']);
  run(EMULATOR, ['host', 'nic-5', 'power-down']);
  run(EMULATOR, ['host', 'nic-7', 'suspend']);
  await sleep(1500); // polls read the new host states; the alerts are stored
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 940 } });
    await page.goto(`http://${PAGE}/#token=${token}`);
    await page.waitForFunction(() => performance.getEntriesByName('lifeline-list-rendered').length > 0);
    await page.waitForSelector('#g-chart .uplot');
    await sleep(1200); // one more glance from the event stream
    await page.screenshot({ path: join(OUT, 'fleet-page.png') });
    await page.goto(`http://${PAGE}/#nic=nic-2`);
    await page.waitForSelector('#nic-id');
    await page.click('button[data-action="state"]');
    await page.waitForFunction(() => /done|failed/.test(String((globalThis as { document?: { getElementById(id: string): { textContent: string } | null } }).document?.getElementById('action-result')?.textContent)));
    await page.screenshot({ path: join(OUT, 'fleet-page-nic.png'), fullPage: true });
  } finally {
    await browser.close();
  }
  process.stdout.write(`wrote ${join(OUT, 'fleet-page.png')} and ${join(OUT, 'fleet-page-nic.png')}\n`);
}

main()
  .catch((e) => {
    process.stderr.write(`screenshots: ${(e as Error).message}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) c.kill('SIGTERM');
    setTimeout(() => {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }, 1000);
  });
