/**
 * Bad command lines, as the user types them, against both executables: one line on stderr,
 * `prog: E_USAGE: ...`, exit code 2 (docs/CLI.md, "Exit codes"). None of these needs a running emulator.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMULATOR, Lab, STATION, type RunResult } from '../support/lab.js';

function assertUsage(r: RunResult, prog: 'nic-emulator' | 'mgmt-station', message?: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^${prog}: E_USAGE: `));
  if (message) assert.match(r.stderr, message);
}

describe('e2e: usage errors exit 2 with one line', function () {
  this.timeout(30000);
  let lab: Lab;
  before(() => {
    lab = new Lab('cli-usage');
  });
  after(async () => lab?.cleanup());

  const emulator = (args: string[]) => lab.run(args, { bin: EMULATOR });
  const station = (args: string[]) => lab.run(args, { bin: STATION });

  describe('options node:util parseArgs rejects (unknown, malformed)', () => {
    it('nic-emulator status --bogus', async () => assertUsage(await emulator(['status', '--bogus']), 'nic-emulator', /Unknown option '--bogus'/));
    it('nic-emulator status --json=1', async () => assertUsage(await emulator(['status', '--json=1']), 'nic-emulator', /'--json' does not take an argument/));
    it('nic-emulator fault nic-1 tear-next-write -5', async () => assertUsage(await emulator(['fault', 'nic-1', 'tear-next-write', '-5']), 'nic-emulator', /'-5'/));
    it('mgmt-station state nic-1 --bogus', async () => assertUsage(await station(['state', 'nic-1', '--bogus']), 'mgmt-station', /Unknown option '--bogus'/));
    it('mgmt-station state nic-1 --timeout -5 (a three-line message from Node, printed on one)', async () =>
      assertUsage(await station(['state', 'nic-1', '--timeout', '-5']), 'mgmt-station', /'--timeout' argument is ambiguous\. Did you forget/));
  });

  describe('nic-emulator fault NIC tear-next-write BYTE', () => {
    for (const at of ['abc', '1.5', '0x10', '']) {
      it(`BYTE '${at}' is refused before anything is armed`, async () =>
        assertUsage(await emulator(['fault', 'nic-1', 'tear-next-write', at, '--control', '127.0.0.1:1']), 'nic-emulator', /BYTE must be a whole number >= 0/));
    }
  });

  describe('the control API address (--control, mgmt-station --emulator) is checked before connecting', () => {
    for (const [addr, why] of [['127.0.0.1:abc', /--control: expected HOST:PORT/], ['127.0.0.1:99999', /--control: port out of range/], ['127.0.0.1:0', /--control: port 0/]] as const) {
      it(`nic-emulator status --control ${addr}`, async () => assertUsage(await emulator(['status', '--control', addr]), 'nic-emulator', why));
    }
    const stationArgs = (emu: string) => [STATION, 'sa', 'manual', 'nic-1', '--no-daemon', '--store', lab.store, '--cluster-key', lab.keyFile, '--emulator', emu];
    it('mgmt-station sa manual --emulator 127.0.0.1:abc', async () => {
      const r = await lab.exec(process.execPath, stationArgs('127.0.0.1:abc'));
      // The first station command of a lab creates the cluster key and says so on a line of its own.
      r.stderr = r.stderr.replace(/^mgmt-station: created cluster key .*\n/, '');
      assertUsage(r, 'mgmt-station', /expected HOST:PORT/);
    });
    it("mgmt-station's unreachable hint does not name nic-emulator's --control option", async () => {
      const r = await lab.exec(process.execPath, stationArgs('127.0.0.1:1'));
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /E_UNREACHABLE: cannot reach the emulator control API at 127\.0\.0\.1:1/);
      assert.doesNotMatch(r.stderr, /--control/);
    });
  });

  describe('nic-emulator start options are checked before anything starts', () => {
    const start = (args: string[]) => emulator(['start', '--nics', '1', '--port-base', '29700', '--control', '127.0.0.1:0', '--data-dir', `${lab.dir}/nics`, ...args]);
    it('--data-dir naming a regular file: E_USAGE naming the path', async () => {
      const file = join(lab.dir, 'a-file');
      writeFileSync(file, 'not a directory');
      assertUsage(await start(['--data-dir', file]), 'nic-emulator', new RegExp(`cannot use ${file} as the EEPROM directory`));
    });
    for (const k of ['0', '4095', '65537', '4294967297', '-1', '1e3']) {
      it(`--checkpoint-block ${k}: E_USAGE (4096..65536)`, async () => assertUsage(await start([`--checkpoint-block=${k}`]), 'nic-emulator', /--checkpoint-block must be a whole number 4096\.\.65536/));
    }
    it('--log-format bogus: E_USAGE', async () => assertUsage(await start(['--log-format', 'bogus']), 'nic-emulator', /--log-format must be one of text, json/));
    it('--log-level bogus: E_USAGE', async () => assertUsage(await start(['--log-level', 'bogus']), 'nic-emulator', /--log-level must be one of debug, info, warn, error/));
  });

  describe('mgmt-station options are checked before a store or cluster key is created', () => {
    // A fresh store path each: a usage error must leave no store file and no cluster key behind.
    let n = 0;
    const fresh = () => {
      const dir = join(lab.dir, `fresh-${++n}`);
      return { store: `sqlite:${join(dir, 'station.db')}`, keyFile: join(dir, 'cluster.key'), dir };
    };
    const cases: [string[], RegExp][] = [
      [['serve', '--poll-interval', '0'], /--poll-interval must be a whole number >= 1, got '0'/],
      [['serve', '--max-down-time', 'x'], /--max-down-time must be a whole number >= 0, got 'x'/],
      [['serve', '--refresh-interval', '10', '--lifetime', '5'], /exceeds the SA lifetime/],
      [['sa', 'manual', 'nic-1', '--no-daemon', '--policy', 'ah'], /--policy must be esp or esp\+ah/],
      [['sa', 'manual', 'nic-1', '--no-daemon', '--key-bits', '100'], /--key-bits must be 128 or 256/],
      [['state', 'nic-1', '--timeout', '1e3'], /--timeout must be a whole number >= 1, got '1e3'/],
    ];
    for (const [args, why] of cases) {
      it(`mgmt-station ${args.join(' ')}`, async () => {
        const f = fresh();
        assertUsage(await lab.run(args, { store: f.store, keyFile: f.keyFile }), 'mgmt-station', why);
        assert.equal(existsSync(f.dir), false, 'nothing created');
      });
    }
    it('mgmt-station sa manual --emulator 127.0.0.1:abc (a fresh store)', async () => {
      const f = fresh();
      const r = await lab.exec(process.execPath, [STATION, 'sa', 'manual', 'nic-1', '--no-daemon', '--store', f.store, '--cluster-key', f.keyFile, '--emulator', '127.0.0.1:abc']);
      assertUsage(r, 'mgmt-station', /expected HOST:PORT/);
      assert.equal(existsSync(f.dir), false, 'nothing created');
    });
  });

  describe('extra positional arguments', () => {
    for (const args of [['status', 'nic-1', 'extra'], ['stop', 'now'], ['host', 'nic-1', 'hang', 'extra'], ['fault', 'nic-1', 'tear-next-write', '3', '4']]) {
      it(`nic-emulator ${args.join(' ')}`, async () => assertUsage(await emulator([...args, '--control', '127.0.0.1:1']), 'nic-emulator', /unexpected argument/));
    }
  });
});
