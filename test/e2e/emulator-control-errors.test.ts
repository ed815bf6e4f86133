/**
 * The emulator's control API (nic-emulator/control-server.ts) given bad requests: every one is answered with a
 * 4xx and a coded error naming what is wrong, never HTTP 500 E_INTERNAL (which means a bug).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../support/lab.js';

interface Answer { status: number; allow?: string; body: { error?: { code: string; message: string } } & Record<string, unknown> }

/** One raw HTTP request: the body is sent as given (not JSON-encoded), so malformed bodies can be tested. */
function request(control: string, method: string, path: string, rawBody?: string): Promise<Answer> {
  const [host, port] = control.split(':');
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: Number(port), method, path, agent: false, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, allow: res.headers.allow, body: JSON.parse(text) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (rawBody !== undefined) req.write(rawBody);
    req.end();
  });
}

const KEY20 = '11'.repeat(20);
function sa(toNicSpi: number, fromNicSpi: number): unknown {
  return { transform: 'aes-gcm-16', policy: 'esp', esn: false, origin: 'manual', toNic: { spi: toNicSpi, encKey: KEY20 }, fromNic: { spi: fromNicSpi, encKey: KEY20 } };
}

describe('e2e: control API bad requests', function () {
  this.timeout(30000);
  let lab: Lab;
  let control: string;
  const post = (path: string, body: string) => request(control, 'POST', path, body);
  const assertUsage = (a: Answer, message?: RegExp) => {
    assert.equal(a.status, 400, JSON.stringify(a.body));
    assert.equal(a.body.error?.code, 'E_USAGE', JSON.stringify(a.body));
    if (message) assert.match(a.body.error!.message, message);
  };

  before(async () => {
    lab = new Lab('control-errors');
    await lab.startEmulator(['--nics', '2']);
    control = lab.ready!.control;
  });
  after(async () => lab?.cleanup());

  describe('fault tear-next-write atByte', () => {
    for (const atByte of ['-1', '"x"', '1.5', 'null']) {
      it(`atByte ${atByte}: 400 E_USAGE naming atByte`, async () =>
        assertUsage(await post('/v1/nics/nic-1/fault', `{"kind":"tear-next-write","atByte":${atByte}}`), /atByte must be a whole number >= 0/));
    }
    it('atByte missing: 400 E_USAGE', async () => assertUsage(await post('/v1/nics/nic-1/fault', '{"kind":"tear-next-write"}'), /atByte/));
  });

  describe('bodies that are not what the endpoint takes', () => {
    for (const body of ['null', '[]', '5', '"text"']) {
      for (const ep of ['host', 'sa']) {
        it(`body ${body} to /${ep}: 400 E_USAGE, the body must be an object`, async () =>
          assertUsage(await post(`/v1/nics/nic-1/${ep}`, body), /request body must be a JSON object/));
      }
    }
    it('host event that is not a string: 400 E_USAGE naming event', async () =>
      assertUsage(await post('/v1/nics/nic-1/host', '{"event":{"toString":1}}'), /event must be a string/));
    it('an SA key that is not hex: 400 E_USAGE naming the key', async () => {
      const bad = sa(400, 401) as { toNic: { encKey: string } };
      bad.toNic.encKey = 'zz'.repeat(20);
      assertUsage(await post('/v1/nics/nic-1/sa', JSON.stringify({ sa: bad })), /toNic\.encKey must be an even number of hex digits/);
    });
    it('an SA key of odd length: 400 E_USAGE naming the key', async () => {
      const bad = sa(400, 401) as { fromNic: { encKey: string } };
      bad.fromNic.encKey = 'abc';
      assertUsage(await post('/v1/nics/nic-1/sa', JSON.stringify({ sa: bad })), /fromNic\.encKey/);
    });
    it('an SA key that is an object: 400 E_USAGE', async () => {
      const bad = sa(400, 401) as { toNic: { encKey: unknown } };
      bad.toNic.encKey = { toString: 1 };
      assertUsage(await post('/v1/nics/nic-1/sa', JSON.stringify({ sa: bad })), /toNic\.encKey must be a hex string/);
    });
    it('an SA transform that is an object: 400 E_USAGE', async () =>
      assertUsage(await post('/v1/nics/nic-1/sa', JSON.stringify({ sa: { ...(sa(400, 401) as object), transform: { toString: 1 } } })), /transform/));
    it('a trust-anchor psk that is not hex: 400 E_USAGE naming psk', async () =>
      assertUsage(await post('/v1/nics/nic-1/trust-anchor', '{"psk":"not hex"}'), /psk must be an even number of hex digits/));
    it('a policy text that is not a string: 400 E_USAGE naming text', async () =>
      assertUsage(await post('/v1/nics/nic-1/policy', '{"text":{"toString":1}}'), /text must be a string/));
    it('clearManagement with a non-string: 400 E_USAGE', async () =>
      assertUsage(await post('/v1/nics/nic-1/config', '{"clearManagement":[{"toString":1}]}'), /clearManagement/));
    it('the NIC is unchanged after all of these', async () => {
      const s = await lab.nic('nic-1');
      assert.equal(s.state, 'running');
      assert.equal(s.sa.active, null);
    });
  });

  describe('paths and methods', () => {
    it('a malformed percent-encoding in the NIC id: 400 E_USAGE', async () =>
      assertUsage(await request(control, 'GET', '/v1/nics/%E0%A4%A'), /malformed percent-encoding/));
    it('GET on a POST endpoint: 405 with Allow: POST', async () => {
      const a = await request(control, 'GET', '/v1/nics/nic-1/host');
      assert.equal(a.status, 405, JSON.stringify(a.body));
      assert.equal(a.allow, 'POST');
      assert.equal(a.body.error?.code, 'E_USAGE');
    });
    it('POST /v1/nics: 405 with Allow: GET', async () => {
      const a = await request(control, 'POST', '/v1/nics', '{}');
      assert.equal(a.status, 405);
      assert.equal(a.allow, 'GET');
    });
    it('GET /v2 : 404 naming the path (GET / is the index pointing at the fleet page, lab-and-demo checks it)', async () => {
      const a = await request(control, 'GET', '/v2');
      assert.equal(a.status, 404);
      assert.equal(a.body.error?.message, 'no such endpoint: GET /v2');
    });
    it('an unknown sub-resource: 404', async () => assert.equal((await request(control, 'GET', '/v1/nics/nic-1/bogus')).status, 404));
  });

  describe('SPIs: an SA the NIC could not tell apart from one it holds is refused (nic-2)', () => {
    const install = (pair: unknown) => post('/v1/nics/nic-2/sa', JSON.stringify({ sa: pair }));

    it('the first SA with toNic.spi 300 is installed', async () => {
      const a = await install(sa(300, 301));
      assert.equal(a.status, 200, JSON.stringify(a.body));
    });
    it('a second SA with toNic.spi 300 (another fromNic SPI): 409 E_SPI_IN_USE, nothing written', async () => {
      const before = await lab.nic('nic-2');
      const a = await install(sa(300, 302));
      assert.equal(a.status, 409, JSON.stringify(a.body));
      assert.equal(a.body.error?.code, 'E_SPI_IN_USE');
      assert.match(a.body.error!.message, /nic-2 already holds inbound SPI 300/);
      const after = await lab.nic('nic-2');
      assert.deepEqual(after.sa, before.sa);
      assert.equal(after.eepromWrites.total, before.eepromWrites.total);
    });
    it('an esp+ah SA whose AH SPI toward the NIC is a held inbound SPI: 409 E_SPI_IN_USE', async () => {
      const ah: Record<string, any> = { ...(sa(310, 311) as Record<string, any>), policy: 'esp+ah' };
      ah.toNic = { ...ah.toNic, ahSpi: 300, ahKey: '22'.repeat(32) };
      ah.fromNic = { ...ah.fromNic, ahSpi: 312, ahKey: '33'.repeat(32) };
      const a = await install(ah);
      assert.equal(a.status, 409, JSON.stringify(a.body));
      assert.equal(a.body.error?.code, 'E_SPI_IN_USE');
    });
    it('an SA using one SPI for both directions: 400 E_USAGE', async () =>
      assertUsage(await install(sa(320, 320)), /SPI 320 is used toward the NIC and from it/));
    it('a new SA with fresh SPIs is installed; the first becomes previous, still found by SPI 300', async () => {
      const a = await install(sa(330, 331));
      assert.equal(a.status, 200, JSON.stringify(a.body));
      const s = await lab.nic('nic-2');
      assert.equal(s.sa.active.generation, (a.body as { generation: number }).generation);
      assert.ok(s.sa.previous, 'the first SA is kept as previous');
    });
    it('the previous SA\'s SPI 300 is still held: 409 E_SPI_IN_USE', async () => {
      const a = await install(sa(300, 340));
      assert.equal(a.status, 409, JSON.stringify(a.body));
    });
  });

  describe('nic-emulator policy NIC FILE errors', () => {
    it('a policy over 1024 bytes: E_POLICY naming the file', async () => {
      const file = join(lab.dir, 'big.ini');
      writeFileSync(file, '[GENERAL]\n' + '; padding\n'.repeat(120));
      const r = await lab.emulatorCli(['policy', 'nic-1', file]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^nic-emulator: E_POLICY: ${file}: the policy is \\d+ bytes; the NIC's EEPROM holds at most 1024\n$`));
    });
    it('binary junk in a policy file is escaped in the one error line', async () => {
      const file = join(lab.dir, 'junk.ini');
      writeFileSync(file, Buffer.from([0x1b, 0x5b, 0x32, 0x4a, 0x07, 0x0d, 0x41, 0x00, 0x0a]));
      const r = await lab.emulatorCli(['policy', 'nic-1', file]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.split('\n').length, 2, JSON.stringify(r.stderr));
      assert.doesNotMatch(r.stderr.trimEnd(), /[\x00-\x1f\x7f]/, JSON.stringify(r.stderr));
      assert.match(r.stderr, /\\x1b/);
    });
  });
});
