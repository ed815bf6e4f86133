/**
 * The two commands a new user runs besides the tests: `npm start` (scripts/lab.ts: 4 NICs, one station daemon,
 * SQLite, stays up until Ctrl-C) and `npm run demo` (scripts/demo.ts: a scripted tour that exits 0).
 * Issue 2 criterion 1. The lab runs in a temporary directory on its own addresses (LIFELINE_LAB_* variables).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, STATION, freshFirstAddress, isRoot } from '../support/lab.js';

describe('npm start and npm run demo', function () {
  this.timeout(90000);

  it('npm run demo: every step of the tour behaves and it exits 0', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist/scripts/demo.js')], { cwd: ROOT, encoding: 'utf8', timeout: 80000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Summary: (\d+)\/\1 steps ok/);
  });

  it('npm start: a lab with 4 enrolled NICs and a station daemon that stays up, answers, and stops on SIGINT', async function () {
    if (!isRoot) this.skip(); // port-per-NIC lab uses fixed ports; the address-per-NIC lab needs root
    const dir = mkdtempSync(join(tmpdir(), 'lifeline-npm-start-'));
    const lab = spawn(process.execPath, [join(ROOT, 'dist/scripts/lab.js')], {
      cwd: ROOT,
      env: { ...process.env, LIFELINE_LAB_DIR: dir, LIFELINE_LAB_CONTROL: '127.0.0.1:0', LIFELINE_LAB_STATION_CONTROL: '127.0.0.1:0', LIFELINE_LAB_FIRST_ADDRESS: freshFirstAddress() },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, as a terminal's: Ctrl-C signals the lab and its children at once
    });
    let out = '';
    let err = '';
    lab.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    lab.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`lab not up in 60 s: ${out}${err}`)), 60000);
        const poll = setInterval(() => {
          if (out.includes('Ctrl-C stops the lab')) {
            clearTimeout(t);
            clearInterval(poll);
            resolve();
          }
        }, 100);
        lab.once('exit', (code) => reject(new Error(`lab exited ${code}: ${out}${err}`)));
      });
      assert.match(out, /Lifeline lab is up: 4 NICs/, err);
      assert.match(out, /Secure ping nic-1: pong from nic-1/, err);
      const control = /emulator control http:\/\/(\S+)/.exec(out)![1]!;
      // Issue 17: the banner's addresses answer at / (the fleet page; the emulator's index points to it), and the
      // page's address with the credential is printed for the one who started the lab.
      const page = /Fleet page +(http:\/\/\S+\/)/.exec(out)?.[1];
      assert.ok(page, out);
      assert.match(out, new RegExp(`open ${page.replace(/[.]/g, '\\.')}#token=[0-9a-f]{64}`));
      for (const url of [page, `http://${control}/`]) {
        const r = await fetch(url);
        assert.equal(r.status, 200, url);
        assert.match(await r.text(), /fleet page|Lifeline fleet/i, url);
      }
      const glance = (await (await fetch(`${page}v1/fleet`)).json()) as { nics: number };
      assert.equal(glance.nics, 4);
      // A user's command in the lab's directory goes through the lab's station daemon.
      const r = spawnSync(process.execPath, [STATION, 'state', 'nic-4', '--json', '--emulator', control], { cwd: dir, encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).response.systemState, 0);
      await new Promise((res) => setTimeout(res, 1000)); // it stays up
      assert.equal(lab.exitCode, null);
      const children = spawnSync('pgrep', ['-P', String(lab.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number);
      assert.equal(children.length, 2, 'the lab runs the emulator and the station daemon');
      const exited = new Promise<number | null>((res) => lab.once('exit', (code) => res(code)));
      process.kill(-lab.pid!, 'SIGINT'); // Ctrl-C: the whole process group
      assert.equal(await exited, 0);
      // Issue 17: a normal Ctrl-C printed "nic-emulator exited (0); stopping the lab" as if something had failed.
      assert.doesNotMatch(err, /exited|stopping the lab/, err);
      await new Promise((res) => setTimeout(res, 500));
      const alive = children.filter((pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      });
      assert.deepEqual(alive, [], 'the lab stopped its emulator and station daemon');
      assert.deepEqual(readdirSync(join(dir, 'var')).filter((f) => f.endsWith('.daemon.json')), [], 'the daemon removed its announce file');
    } finally {
      try {
        process.kill(-lab.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
