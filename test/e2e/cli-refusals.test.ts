/**
 * Issue 15, smaller items: input the CLIs used to take is refused with a coded error, in one line, in bounded time.
 *  - a 0-byte store file read as an empty store: now E_STORE (exit 3), whatever the verb, and nothing is written;
 *  - `--control` took a non-loopback address although the help says loopback only: now E_USAGE (exit 2), before
 *    anything is bound or connected;
 *  - `nic-emulator policy NIC /dev/zero` read without bound (2.6 GB in 8 s): now E_POLICY (exit 2) after reading
 *    at most what a NIC's EEPROM can hold.
 */
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMULATOR, Lab, type RunResult } from '../support/lab.js';
import { writePskFile } from '../support/station-daemon.js';

function assertOneLine(r: RunResult, prog: string, code: string, exit: number, message: RegExp): void {
  assert.equal(r.code, exit, `exit code; stderr: ${r.stderr}`);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^${prog}: ${code}: `));
  assert.match(r.stderr, message);
}

describe('e2e: the CLIs refuse a truncated store, a non-loopback control address, an unbounded policy file', function () {
  this.timeout(60000);
  let lab: Lab;
  before(() => {
    lab = new Lab('cli-refusals');
  });
  after(async () => lab?.cleanup());

  describe('a 0-byte store file is E_STORE, not an empty store', () => {
    const empty = () => {
      const file = join(lab.dir, 'empty.db');
      writeFileSync(file, '');
      return file;
    };
    for (const args of [['list'], ['log', 'nic-1'], ['enroll', 'nic-1', '--psk-file', 'PSK'], ['serve']]) {
      it(`mgmt-station ${args.join(' ')} --store sqlite:EMPTY: E_STORE, exit 3, the file stays 0 bytes`, async () => {
        const file = empty();
        const argv = args.map((a) => (a === 'PSK' ? writePskFile(lab).file : a));
        const r = await lab.run(argv, { store: `sqlite:${file}`, env: { LIFELINE_CLUSTER_KEY: '42'.repeat(32) } });
        assertOneLine(r, 'mgmt-station', 'E_STORE', 3, /0 bytes \(truncated\?\)/);
        assert.equal(statSync(file).size, 0);
      });
    }
  });

  describe('--control takes loopback addresses only (the help says so)', () => {
    const station = (args: string[]) => lab.run(args, { store: `sqlite:${join(lab.dir, 'serve.db')}`, keyFile: join(lab.dir, 'serve.key'), timeoutMs: 10000 });
    for (const addr of ['0.0.0.0:8623', '192.0.2.1:8623', 'example.org:8623']) {
      it(`mgmt-station serve --control ${addr}: E_USAGE, exit 2, nothing listens`, async () => {
        const r = await station(['serve', '--control', addr]);
        assertOneLine(r, 'mgmt-station', 'E_USAGE', 2, /--control .*loopback/);
        assert.equal(existsSync(join(lab.dir, 'serve.db')), false, 'nothing created');
      });
      it(`nic-emulator status --control ${addr}: E_USAGE, exit 2, nothing connected`, async () => {
        const r = await lab.run(['status', '--control', addr], { bin: EMULATOR, timeoutMs: 10000 });
        assertOneLine(r, 'nic-emulator', 'E_USAGE', 2, /--control .*loopback/);
      });
    }
    it('nic-emulator start --control 0.0.0.0:0: E_USAGE, exit 2', async () => {
      const r = await lab.run(['start', '--nics', '1', '--port-base', '29800', '--control', '0.0.0.0:0', '--data-dir', join(lab.dir, 'nics')], { bin: EMULATOR, timeoutMs: 10000 });
      assertOneLine(r, 'nic-emulator', 'E_USAGE', 2, /--control .*loopback/);
    });
    it('loopback addresses are fine: 127.0.0.1, 127.x.y.z, localhost (nic-emulator status: unreachable, not a usage error)', async () => {
      for (const addr of ['127.0.0.1:1', '127.5.6.7:1', 'localhost:1']) {
        const r = await lab.run(['status', '--control', addr], { bin: EMULATOR, timeoutMs: 10000 });
        assert.equal(r.code, 3, `${addr}: ${r.stderr}`);
      }
    });
  });

  describe('nic-emulator policy NIC FILE reads at most what a NIC can hold', () => {
    before(async () => lab.startEmulator(['--nics', '1']));
    it('policy nic-1 /dev/zero: E_POLICY naming the file and the limit, within seconds, nothing written', async () => {
      const t0 = Date.now();
      const r = await lab.emulatorCli(['policy', 'nic-1', '/dev/zero'], 10000);
      assertOneLine(r, 'nic-emulator', 'E_POLICY', 2, /\/dev\/zero: the policy is over \d+ bytes; the NIC's EEPROM holds at most \d+/);
      assert.ok(Date.now() - t0 < 8000, `${Date.now() - t0} ms`);
      assert.equal((await lab.nic('nic-1')).heartbeat?.stations?.length ?? 0, 0, 'no policy written');
    });
    it('a large regular file: E_POLICY too; a policy that fits is written', async () => {
      const big = join(lab.dir, 'big.ini');
      writeFileSync(big, `[GENERAL]\n; ${'x'.repeat(100_000)}\n`);
      assertOneLine(await lab.emulatorCli(['policy', 'nic-1', big]), 'nic-emulator', 'E_POLICY', 2, /big\.ini: the policy is 10001\d bytes; the NIC's EEPROM holds at most 1024/);
      const ok = join(lab.dir, 'ok.ini');
      writeFileSync(ok, '[GENERAL]\nHeartbeat = NONE\n[CLUSTER]\nCluster1 = 127.0.0.1:7001\n');
      const r = await lab.emulatorCli(['policy', 'nic-1', ok]);
      assert.equal(r.code, 0, r.stderr);
    });
  });
});
