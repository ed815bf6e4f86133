/**
 * One station, NICs of several emulators (issue 16): the store keys NICs by id, so two emulators that give out
 * the same ids (the same --id-prefix, or none) must not silently share a record. Enrolment of an id the store
 * holds with another EEPROM serial, reached through another emulator or at another address, is E_NIC_IDENTITY
 * and changes nothing (no trust anchor written, the record as it was); the same emulator and address with a new
 * serial is that NIC slot formatted anew, enrolled again.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StationContext, emulatorControl } from '../../mgmt-station/context.js';
import { createClusterKeyFile } from '../../mgmt-station/store/cluster-key.js';
import type { ControlClient } from '../../lib/control-client.js';

async function deadPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** An emulator at control port `controlPort` whose NIC `id` has `serial` at `address`; trust anchor writes are counted. */
function emulator(controlPort: number, id: string, serial: string | undefined, address: string, port: number, anchors: string[]): ControlClient {
  return {
    host: '127.0.0.1',
    port: controlPort,
    get: async () => ({ id, serial, address, ports: { clear: port, secure: port, ike: port }, sa: { checkpointBlock: 16384 } }),
    post: async (path: string) => {
      assert.match(path, /\/trust-anchor$/);
      anchors.push(`${controlPort}:${serial}`);
      return {};
    },
  } as unknown as ControlClient;
}

describe('station: one id, two NICs (E_NIC_IDENTITY)', function () {
  this.timeout(20000);
  let dir = '';
  let ctx: StationContext;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lifeline-enroll-identity-'));
    createClusterKeyFile(join(dir, 'cluster.key'));
    ctx = await StationContext.open({ store: `sqlite:${join(dir, 'station.db')}`, keyFile: join(dir, 'cluster.key'), stationId: 'station-1', leaseMs: 60000, create: true });
  });
  afterEach(async () => {
    await ctx.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Enrol; the key exchange fails (nothing answers IKE), after the record was written. Returns the error code. */
  const enroll = (emu: ControlClient, id: string) =>
    ctx.enroll(emulatorControl(emu), id, new Uint8Array(randomBytes(32)), 300).then(() => 'ok', (e: Error & { code?: string }) => ({ code: e.code, message: e.message }));

  it('refuses a second emulator\'s NIC with an enrolled id and another serial; nothing changes', async () => {
    const port = await deadPort();
    const anchors: string[] = [];
    const first = await enroll(emulator(8623, 'lab-a-nic-1', 'LL000000000001', '10.77.1.1', port, anchors), 'lab-a-nic-1');
    assert.notEqual((first as { code: string }).code, 'E_NIC_IDENTITY');
    const before = await ctx.store.getNic('lab-a-nic-1');
    assert.equal(before?.meta.serial, 'LL000000000001', 'enrolment records the serial');
    const r = await enroll(emulator(8624, 'lab-a-nic-1', 'LL000000000002', '10.77.2.1', port, anchors), 'lab-a-nic-1');
    assert.equal((r as { code: string }).code, 'E_NIC_IDENTITY');
    assert.match((r as { message: string }).message, /LL000000000001.*LL000000000002.*--id-prefix/);
    assert.deepEqual(anchors, ['8623:LL000000000001'], 'no trust anchor written to the second NIC');
    assert.deepEqual(await ctx.store.getNic('lab-a-nic-1'), before, 'the record is as it was');
  });

  it('the same emulator and address with a new serial (EEPROM file deleted, NIC formatted anew) enrols again', async () => {
    const port = await deadPort();
    const anchors: string[] = [];
    await enroll(emulator(8623, 'nic-1', 'LL000000000001', '127.0.0.1', port, anchors), 'nic-1');
    const r = await enroll(emulator(8623, 'nic-1', 'LL0000000000FF', '127.0.0.1', port, anchors), 'nic-1');
    assert.notEqual((r as { code: string }).code, 'E_NIC_IDENTITY');
    assert.equal((await ctx.store.getNic('nic-1'))?.meta.serial, 'LL0000000000FF');
    assert.equal(anchors.length, 2);
  });

  it('records made before serials (or an emulator that reports none) are not checked, and get the serial from then on', async () => {
    const port = await deadPort();
    const anchors: string[] = [];
    await enroll(emulator(8623, 'nic-2', undefined, '127.0.0.1', port, anchors), 'nic-2');
    assert.equal((await ctx.store.getNic('nic-2'))?.meta.serial, undefined);
    const r = await enroll(emulator(8624, 'nic-2', 'LL000000000003', '127.0.0.2', port, anchors), 'nic-2');
    assert.notEqual((r as { code: string }).code, 'E_NIC_IDENTITY');
    assert.equal((await ctx.store.getNic('nic-2'))?.meta.serial, 'LL000000000003');
  });
});
