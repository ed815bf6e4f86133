/**
 * lib/control-client.ts against real TCP servers on loopback: a control API that takes the connection and never
 * answers (a stopped or overloaded emulator) is E_TIMEOUT after the client's timeout; nothing listening is
 * E_UNREACHABLE; an answer that is not JSON is E_UNREACHABLE naming it; with a keep-alive agent (fleet verbs)
 * requests share a connection, without one each has its own.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ControlClient, controlTimeoutMs, DEFAULT_CONTROL_TIMEOUT_MS, keepAliveAgent } from '../../lib/control-client.js';
import { LifelineError } from '../../common/errors.js';

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return (server.address() as AddressInfo).port;
}

describe('lib/control-client.ts', function () {
  this.timeout(10000);

  it('a control API that takes the request and never answers: E_TIMEOUT after the given timeout', async () => {
    const held: net.Socket[] = [];
    const server = net.createServer((c) => held.push(c)); // reads nothing, answers nothing
    const port = await listen(server);
    try {
      const client = ControlClient.parse(`127.0.0.1:${port}`, '--emulator', 300);
      const t0 = performance.now();
      const err = await client.post('/v1/nics/nic-1/sa', { sa: {} }).then(() => null, (e: unknown) => e);
      const ms = performance.now() - t0;
      assert.ok(err instanceof LifelineError, String(err));
      assert.equal(err.code, 'E_TIMEOUT');
      assert.match(err.message, /did not answer POST \/v1\/nics\/nic-1\/sa within 300 ms/);
      assert.match(err.message, /may have taken effect/, 'a POST that timed out may have been applied');
      assert.ok(ms >= 250 && ms < 3000, `gave up after ${ms} ms`);
    } finally {
      for (const c of held) c.destroy();
      server.close();
    }
  });

  it('nothing listening: E_UNREACHABLE naming the option that gave the address', async () => {
    const server = net.createServer();
    const port = await listen(server);
    await new Promise((ok) => server.close(ok)); // the port is free again: connections are refused
    const err = await ControlClient.parse(`127.0.0.1:${port}`, '--emulator').get('/v1/nics').then(() => null, (e: unknown) => e);
    assert.ok(err instanceof LifelineError, String(err));
    assert.equal(err.code, 'E_UNREACHABLE');
    assert.match(err.message, /--emulator HOST:PORT/);
  });

  it('an answer that is not JSON: E_UNREACHABLE, asking whether it is a nic-emulator', async () => {
    const server = http.createServer((_req, res) => res.end('<html>hello</html>'));
    const port = await listen(server);
    try {
      const err = await ControlClient.parse(`127.0.0.1:${port}`).get('/v1/nics').then(() => null, (e: unknown) => e);
      assert.ok(err instanceof LifelineError, String(err));
      assert.equal(err.code, 'E_UNREACHABLE');
      assert.match(err.message, /non-JSON/);
    } finally {
      server.close();
    }
  });

  it('with keepAliveAgent, requests one after another share one connection; without, each has its own', async () => {
    let connections = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.setHeader('content-type', 'application/json').end('{"ok":true}'));
    });
    server.on('connection', () => connections++);
    // This work's test address (loopback, 127.0.187.0/24), any port.
    await new Promise<void>((ok) => server.listen(0, '127.0.187.3', ok));
    const port = (server.address() as AddressInfo).port;
    const agent = keepAliveAgent(4);
    try {
      const kept = ControlClient.parse(`127.0.187.3:${port}`);
      kept.agent = agent;
      for (let i = 0; i < 3; i++) assert.deepEqual(await kept.post('/v1/nics/nic-1/trust-anchor', { psk: '00' }), { ok: true });
      assert.deepEqual(await kept.get('/v1/nics/nic-1'), { ok: true });
      assert.equal(connections, 1);
      const own = ControlClient.parse(`127.0.187.3:${port}`);
      for (let i = 0; i < 2; i++) assert.deepEqual(await own.get('/v1/nics/nic-1'), { ok: true });
      assert.equal(connections, 3);
    } finally {
      agent.destroy();
      server.closeAllConnections();
      server.close();
    }
  });

  it("mgmt-station's wait is its --timeout, at least the default", () => {
    assert.equal(controlTimeoutMs(100), DEFAULT_CONTROL_TIMEOUT_MS);
    assert.equal(controlTimeoutMs(20000), 20000);
  });
});
