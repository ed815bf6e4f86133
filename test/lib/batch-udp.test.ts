/**
 * lib/batch-udp.ts over real UDP sockets on loopback, for both socket layers (the batched one runs only where
 * lib/native is built; CI builds it, and a test below says so when it is missing): datagrams arrive whole with
 * their sender, answers sent from the handler leave (one batch for many), the `sent` hook runs after they have
 * left, binding an address in use fails with EADDRINUSE, bad destinations and oversize datagrams are reported
 * or counted without throwing, and close is idempotent. Also bench/batch-load.ts's window against a responder.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { batchCounters, batchUdpUnavailable, bindDatagramSocket, bindSharedDatagramSocket, defaultUdpIo, ipv4Value, type DatagramSocket, type Sender, type UdpIo } from '../../lib/batch-udp.js';
import { openBatchClient } from '../../bench/batch-load.js';
import { presencePingProbe } from '../../bench/probes.js';

async function client(): Promise<dgram.Socket> {
  const c = dgram.createSocket('udp4');
  await new Promise<void>((ok) => c.bind(0, '127.0.0.1', ok));
  return c;
}

function receive(c: dgram.Socket, count: number, ms = 2000): Promise<Buffer[]> {
  return new Promise((ok, fail) => {
    const got: Buffer[] = [];
    const t = setTimeout(() => fail(new Error(`got ${got.length} of ${count} datagrams in ${ms} ms`)), ms);
    c.on('message', (m) => {
      got.push(m);
      if (got.length === count) {
        clearTimeout(t);
        ok(got);
      }
    });
  });
}

describe('lib/batch-udp.ts', function () {
  this.timeout(10000);

  it('npm ci built lib/native on this Linux machine (else the NICs fall back to node:dgram)', function () {
    if (process.platform !== 'linux') this.skip();
    assert.equal(batchUdpUnavailable(), null);
    assert.equal(defaultUdpIo(), 'batch');
  });

  for (const io of ['batch', 'dgram'] as UdpIo[]) {
    describe(`--udp-io ${io}`, () => {
      const sockets: DatagramSocket[] = [];
      const clients: dgram.Socket[] = [];
      before(function () {
        if (io === 'batch' && batchUdpUnavailable()) this.skip();
      });
      afterEach(async () => {
        for (const s of sockets.splice(0)) await s.close();
        for (const c of clients.splice(0)) c.close();
      });

      it('delivers each datagram whole with its sender; answers sent from the handler arrive; `sent` runs after them', async () => {
        const events: string[] = [];
        const s = await bindDatagramSocket(io, '127.0.0.1', 0, {
          message: (m: Buffer, from: Sender) => {
            events.push(`msg ${m.toString()}`);
            s.send(Buffer.concat([Buffer.from('re:'), m]), from.port, from.address);
          },
          error: (e) => events.push(`error ${e.message}`),
          sent: () => events.push('sent'),
        });
        sockets.push(s);
        assert.equal(s.io, io);
        assert.ok(s.port > 0);
        const c = await client();
        clients.push(c);
        const answers = receive(c, 100);
        for (let i = 0; i < 100; i++) c.send(`q${i}`, s.port, '127.0.0.1');
        const got = (await answers).map((b) => b.toString()).sort();
        assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => `re:q${i}`).sort());
        assert.ok(!events.some((e) => e.startsWith('error')), events.join('; '));
        assert.equal(events.filter((e) => e.startsWith('msg')).length, 100);
        assert.equal(events.at(-1), 'sent', 'the hook follows the last datagram');
        if (io === 'batch') assert.ok(events.filter((e) => e === 'sent').length <= 100);
        else assert.equal(events.filter((e) => e === 'sent').length, 100);
      });

      it('a handler may keep the Buffer it was given: later datagrams do not overwrite it', async () => {
        const kept: Buffer[] = [];
        const s = await bindDatagramSocket(io, '127.0.0.1', 0, { message: (m) => kept.push(m), error: () => undefined });
        sockets.push(s);
        const c = await client();
        clients.push(c);
        for (let i = 0; i < 40; i++) c.send(Buffer.alloc(20, i), s.port, '127.0.0.1');
        const t0 = Date.now();
        while (kept.length < 40 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 10));
        assert.equal(kept.length, 40);
        kept.forEach((m, i) => assert.deepEqual(m, Buffer.alloc(20, i)));
      });

      it('binding an address:port in use fails with EADDRINUSE', async () => {
        const s = await bindDatagramSocket(io, '127.0.0.1', 0, { message: () => undefined, error: () => undefined });
        sockets.push(s);
        const err = await bindDatagramSocket(io, '127.0.0.1', s.port, { message: () => undefined, error: () => undefined }).then(
          (x) => (sockets.push(x), null),
          (e: NodeJS.ErrnoException) => e,
        );
        assert.equal(err?.code, 'EADDRINUSE');
      });

      it('close twice is fine, and a closed socket sends nothing and does not throw', async () => {
        const s = await bindDatagramSocket(io, '127.0.0.1', 0, { message: () => undefined, error: () => undefined });
        await s.close();
        await s.close();
        s.send(Buffer.from('x'), 9, '127.0.0.1');
      });
    });
  }

  describe('batched only', () => {
    before(function () {
      if (batchUdpUnavailable()) this.skip();
    });

    it('a destination that is not an IPv4 literal goes to the error handler; a datagram over 2048 bytes is counted, not delivered', async () => {
      const errors: string[] = [];
      const got: number[] = [];
      const s = await bindDatagramSocket('batch', '127.0.0.1', 0, { message: (m) => got.push(m.length), error: (e) => errors.push(e.message) });
      try {
        s.send(Buffer.from('x'), 623, 'localhost');
        s.send(Buffer.from('x'), 0, '127.0.0.1');
        assert.equal(errors.length, 2, errors.join('; '));
        assert.match(errors[0]!, /not an IPv4 address and port: localhost:623/);
        const c = await client();
        c.send(Buffer.alloc(3000), s.port, '127.0.0.1');
        c.send(Buffer.alloc(10), s.port, '127.0.0.1');
        const t0 = Date.now();
        while (got.length < 1 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 10));
        c.close();
        assert.deepEqual(got, [10]);
        assert.equal(batchCounters(s)?.truncated, 1);
      } finally {
        await s.close();
      }
    });

    it('a shared socket on the wildcard: each datagram with its destination address (IP_PKTINFO), each answer from the address it names', async () => {
      // 127.100.0.0/16: this test's loopback addresses (all of 127/8 is local on lo). Port 0: the wildcard bind
      // of a free port takes nothing another process binds.
      const locals = ['127.100.0.1', '127.100.0.2', '127.100.3.4'];
      const seen: string[] = [];
      const s = await bindSharedDatagramSocket('0.0.0.0', 0, {
        message: (m, from, local) => {
          seen.push(`${m} to ${local === ipv4Value('127.100.0.1') ? 'a' : local === ipv4Value('127.100.0.2') ? 'b' : local === ipv4Value('127.100.3.4') ? 'c' : local}`);
          s.send(Buffer.from(`re:${m}`), from.port, from.address, local); // in the batch
          s.send(Buffer.from(`now:${m}`), from.port, from.address, ipv4Value('127.100.0.2')); // from another address
        },
        error: (e) => seen.push(`error ${e.message}`),
      });
      const c = await client();
      try {
        const got: string[] = [];
        const done = new Promise<void>((ok, fail) => {
          const t = setTimeout(() => fail(new Error(`got ${got.join(', ')}`)), 3000);
          c.on('message', (m, r) => {
            got.push(`${m} from ${r.address}:${r.port === s.port ? 'p' : r.port}`);
            if (got.length === 6) {
              clearTimeout(t);
              ok();
            }
          });
        });
        locals.forEach((a, i) => c.send(`q${i}`, s.port, a));
        await done;
        assert.deepEqual(seen.sort(), ['q0 to a', 'q1 to b', 'q2 to c']);
        assert.deepEqual(got.sort(), [
          'now:q0 from 127.100.0.2:p', 'now:q1 from 127.100.0.2:p', 'now:q2 from 127.100.0.2:p',
          're:q0 from 127.100.0.1:p', 're:q1 from 127.100.0.2:p', 're:q2 from 127.100.3.4:p',
        ]);
        // A plain socket (no pktinfo) reports no local address, and sends from the kernel's choice.
        const plain: number[] = [];
        const p = await bindDatagramSocket('batch', '127.100.0.9', 0, { message: (_m, _f) => plain.push(1), error: () => undefined });
        try {
          c.send('x', p.port, '127.100.0.9');
          const t0 = Date.now();
          while (plain.length < 1 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 10));
          assert.equal(plain.length, 1);
        } finally {
          await p.close();
        }
      } finally {
        c.close();
        await s.close();
      }
    });

    it('a shared socket on a port in use fails with EADDRINUSE (the wildcard takes the port on every address)', async () => {
      const one = await bindDatagramSocket('batch', '127.100.0.1', 0, { message: () => undefined, error: () => undefined });
      try {
        const err = await bindSharedDatagramSocket('0.0.0.0', one.port, { message: () => undefined, error: () => undefined }).then(
          async (x) => (await x.close(), null),
          (e: NodeJS.ErrnoException) => e,
        );
        assert.equal(err?.code, 'EADDRINUSE');
      } finally {
        await one.close();
      }
    });

    it("a handler that throws reaches process 'uncaughtException' (as a dgram listener's would), and the socket goes on delivering", async () => {
      const lib = resolve(import.meta.dirname, '../../lib/batch-udp.js');
      const script = `
        import { bindDatagramSocket } from ${JSON.stringify(lib)};
        import dgram from 'node:dgram';
        const seen = [];
        process.on('uncaughtException', (e) => { seen.push(e.message); if (seen.length === 2) { console.log(JSON.stringify(seen)); process.exit(0); } });
        const s = await bindDatagramSocket('batch', '127.0.0.1', 0, { message: (m) => { throw new Error('boom ' + m); }, error: () => undefined });
        const c = dgram.createSocket('udp4');
        c.send('a', s.port, '127.0.0.1');
        setTimeout(() => c.send('b', s.port, '127.0.0.1'), 50);
        setTimeout(() => process.exit(3), 3000);`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.on('data', (d) => (out += d));
      child.stderr!.on('data', (d) => (err += d));
      const code = await new Promise<number | null>((ok) => child.on('exit', ok));
      assert.equal(code, 0, err);
      assert.deepEqual(JSON.parse(out), ['boom a', 'boom b']);
    });

    it('bench/batch-load.ts keeps 32 Presence Pings in flight against a responder process and counts the answers', async () => {
      // The generator spins synchronously, so its responder is another process: the bare Node responder.
      const child = spawn(process.execPath, [resolve(import.meta.dirname, '../../bench/echo-responder.js'), '127.0.0.1'], { stdio: ['ignore', 'pipe', 'inherit'] });
      const gen = openBatchClient('127.0.0.1');
      try {
        const port = await new Promise<number>((ok, fail) => {
          child.stdout!.setEncoding('utf8').once('data', (d: string) => ok(Number(d.trim())));
          child.once('exit', (c) => fail(new Error(`echo responder exited (${c})`)));
        });
        const r = gen.window({ address: '127.0.0.1', port }, presencePingProbe(), 32, 300, 100);
        assert.equal(r.inFlight, 32);
        assert.ok(r.completed > 100, `completed ${r.completed}`);
        assert.equal(r.lost, 0);
        assert.ok(r.sent >= r.completed + 32 - 1, `sent ${r.sent}, completed ${r.completed}`);
        assert.ok(Math.abs(r.requestsPerSecond - r.completed / 0.3) < 1);
        assert.ok(r.latency.p50 > 0);
      } finally {
        gen.close();
        gen.close();
        child.kill('SIGKILL');
      }
    });
  });
});
