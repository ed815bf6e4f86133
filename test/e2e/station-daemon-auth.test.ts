/**
 * Issue 15 "the station daemon's control API needs no credential": any local process could power-cycle a NIC with
 * `curl -X POST http://127.0.0.1:PORT/v1/nics/nic-1/power-cycle`, or re-enrol it with a PSK of its choice. Now every
 * request but GET /v1/identity needs the credential the daemon writes into its announce file (0600, a new random
 * token at each start); without it, or with another, the answer is 401 E_AUTH and nothing runs. The CLI of the same
 * user reads the token and is served as before.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { Lab } from '../support/lab.js';
import { StationDaemon, nicSa, stopAllStations, withStore, writePskFile } from '../support/station-daemon.js';

describe('e2e station: the daemon control API needs its credential', function () {
  this.timeout(60000);
  let lab: Lab;
  let daemon: StationDaemon;
  let psk: Buffer;

  before(async () => {
    lab = new Lab('daemon-auth');
    await lab.startEmulator(['--nics', '1']);
    const f = writePskFile(lab);
    psk = f.psk;
    await lab.station(['enroll', 'nic-1', '--psk-file', f.file]);
    daemon = await StationDaemon.start(lab, ['--refresh-interval', '3600']);
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  /** A request as any local process could make it: `authorization` only if given. */
  async function ask(method: string, path: string, o: { body?: unknown; authorization?: string } = {}) {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (o.authorization) headers.authorization = o.authorization;
    const r = await fetch(`http://${daemon.ready.control}${path}`, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body), signal: AbortSignal.timeout(10000) });
    return { status: r.status, auth: r.headers.get('www-authenticate'), json: (await r.json()) as any };
  }

  const execCount = async () => (await lab.control.get<unknown[]>('/v1/nics/nic-1/exec-log')).length;

  it('the announce file is 0600 and carries a fresh 64-hex-digit token', () => {
    assert.equal(statSync(daemon.ready.announce).mode & 0o777, 0o600);
    const a = JSON.parse(readFileSync(daemon.ready.announce, 'utf8'));
    assert.match(a.token, /^[0-9a-f]{64}$/);
    assert.equal(a.pid, daemon.ready.pid);
  });

  it('curl -X POST .../v1/nics/nic-1/power-cycle without the credential: 401 E_AUTH, the NIC is not power-cycled', async () => {
    const before = await execCount();
    const r = await ask('POST', '/v1/nics/nic-1/power-cycle');
    assert.equal(r.status, 401);
    assert.equal(r.json.ok, false);
    assert.equal(r.json.error.code, 'E_AUTH');
    assert.match(r.json.error.message, /credential/);
    assert.match(r.auth ?? '', /^Bearer/);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(await execCount(), before, 'nothing executed');
    assert.equal((await lab.nic('nic-1')).host, 'up');
  });

  it('a wrong token, or another scheme, is 401 too', async () => {
    const before = await execCount();
    for (const authorization of [`Bearer ${'0'.repeat(64)}`, `Bearer ${daemon.control.token!.slice(0, 63)}`, `Basic ${Buffer.from('a:b').toString('base64')}`, 'Bearer']) {
      const r = await ask('POST', '/v1/nics/nic-1/reset', { authorization });
      assert.equal(r.status, 401, authorization);
      assert.equal(r.json.error.code, 'E_AUTH');
    }
    assert.equal(await execCount(), before);
  });

  it('enroll with a PSK of the caller\'s choice without the credential: 401, the NIC keeps its PSK and SA', async () => {
    const sa = await nicSa(lab, 'nic-1');
    const r = await ask('POST', '/v1/nics/nic-1/enroll', { body: { psk: 'ab'.repeat(32), emulator: lab.ready!.control } });
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, 'E_AUTH');
    await new Promise((res) => setTimeout(res, 300));
    assert.deepEqual((await nicSa(lab, 'nic-1')).active, sa.active, 'no new SA');
    const stored = await withStore(lab, (s) => s.getNic('nic-1'));
    assert.deepEqual(Buffer.from(stored!.psk), psk, 'the store keeps the enrolled PSK');
  });

  it('reads need it too: GET /v1/status and /v1/nics are 401; GET /v1/identity says only the station id and pid', async () => {
    for (const path of ['/v1/status', '/v1/nics']) assert.equal((await ask('GET', path)).status, 401, path);
    const id = await ask('GET', '/v1/identity');
    assert.equal(id.status, 200);
    assert.deepEqual(id.json, { id: 'station-1', pid: daemon.ready.pid });
  });

  it('the CLI sends the credential: power-cycle and status go through the daemon', async () => {
    const before = await execCount();
    const r = await lab.run(['power-cycle', 'nic-1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\[via daemon\]/);
    assert.equal(await execCount(), before + 1);
    const st = await lab.station(['status']);
    assert.equal(st.id, 'station-1');
    assert.equal((await daemon.status()).id, 'station-1');
  });

  it('a CLI holding a stale token gets E_AUTH (exit 1) and runs nothing', async () => {
    const file = daemon.ready.announce;
    const original = readFileSync(file, 'utf8');
    const before = await execCount();
    try {
      writeFileSync(file, JSON.stringify({ ...JSON.parse(original), token: 'f'.repeat(64) }) + '\n', { mode: 0o600 });
      const r = await lab.run(['reset', 'nic-1']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^mgmt-station: E_AUTH: /);
    } finally {
      writeFileSync(file, original, { mode: 0o600 });
    }
    assert.equal(await execCount(), before);
  });
});
