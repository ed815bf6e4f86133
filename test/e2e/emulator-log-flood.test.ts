/**
 * Issue 15 "log amplification": each refused clear command used to write a 134-byte WARN line without limit (2 MB/s
 * at 15,500 datagrams/s), and IKE refusals a line per datagram. Now lines are rate-limited per NIC and reason
 * (lib/log-limit.ts): under a flood the emulator's log grows by at most 10 KB/s, a summary line says how many lines
 * were left out, and the NIC's counters keep the detail (every refused command counted).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Lab } from '../support/lab.js';

/** ASF Reset (0x10) with RMCP sequence 0xFF (no ACK asked), clear RMCP on UDP 623: refused unless clear management. */
const CLEAR_RESET = Buffer.from('0600ff06000011be10100000', 'hex');

/** An IKE_SA_INIT request whose only payload is of an unknown type with the critical bit: refused (RFC 7296 §2.5). */
function ikeInitWithCriticalPayload(spi: number): Buffer {
  const b = Buffer.alloc(28 + 4);
  b.writeUInt32BE(spi, 0); // SPIi (8 bytes, never 0)
  b.writeUInt32BE(0x15151515, 4);
  b[16] = 100; // Next Payload: unassigned type 100
  b[17] = 0x20; // IKEv2
  b[18] = 34; // IKE_SA_INIT
  b[19] = 0x08; // I(nitiator)
  b.writeUInt32BE(0, 20); // Message ID
  b.writeUInt32BE(b.length, 24);
  b[28] = 0; // no next payload
  b[29] = 0x80; // critical
  b.writeUInt16BE(4, 30);
  return b;
}

/** Send `make(i)` to address:port at `perSecond` for `seconds` (in 5 ms bursts); resolves with the number sent and the time taken. */
async function flood(address: string, port: number, make: (i: number) => Buffer, perSecond: number, seconds: number): Promise<{ sent: number; ms: number }> {
  const s = dgram.createSocket('udp4');
  s.on('error', () => undefined); // ICMP unreachable and full buffers are not the subject
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const t0 = Date.now();
  let sent = 0;
  try {
    while (Date.now() - t0 < seconds * 1000) {
      const due = Math.floor(((Date.now() - t0) / 1000) * perSecond);
      for (; sent < due; sent++) s.send(make(sent), port, address);
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 200)); // the last bursts leave the socket
  } finally {
    s.close();
  }
  return { sent, ms: Date.now() - t0 };
}

describe('e2e emulator: a flood of refused requests moves counters, not megabytes of log', function () {
  this.timeout(60000);
  let lab: Lab;
  afterEach(async () => lab?.cleanup());

  /** Start a one-NIC emulator and count the bytes of its stderr (its log) from now on. */
  async function start(name: string): Promise<{ logBytes: () => number; log: () => string }> {
    lab = new Lab(name);
    await lab.startEmulator(['--nics', '1']);
    let bytes = 0;
    let text = '';
    lab.emulator!.stderr!.on('data', (c: string) => {
      bytes += Buffer.byteLength(c);
      if (text.length < 1_000_000) text += c;
    });
    return { logBytes: () => bytes, log: () => text };
  }

  it('15,000 refused clear Reset datagrams/s to UDP 623: the log grows by at most 10 KB/s; refusedClear counts every one that arrived', async () => {
    const log = await start('log-flood-clear');
    const nic = await lab.nic('nic-1');
    const before = log.logBytes();
    const f = await flood(nic.address, nic.ports.clear, () => CLEAR_RESET, 15000, 4);
    const counted = (await lab.nic('nic-1')).counters.refusedClear;
    await lab.stopEmulator('SIGTERM'); // a clean stop writes the summaries of the window under way
    const grown = log.logBytes() - before;
    const seconds = f.ms / 1000;
    console.log(`      ${f.sent} datagrams in ${seconds.toFixed(1)} s (${Math.round(f.sent / seconds)}/s); ${counted} refused and counted; log grew ${grown} bytes (${Math.round(grown / seconds)} B/s)`);
    assert.ok(counted >= f.sent * 0.5, `the flood reached the NIC: ${counted} of ${f.sent} counted`);
    assert.ok(grown <= 10_000 * seconds, `log grew ${grown} bytes in ${seconds.toFixed(1)} s: over 10 KB/s`);
    // The log says how many were left out; with the lines it shows, that is every refusal the NIC counted.
    const lines = log.log().split('\n');
    const shown = lines.filter((l) => / WARN .*: clear command refused/.test(l)).length;
    const summaries = lines.map((l) => /'clear command refused': (\d+) more suppressed in (\d+) s/.exec(l)).filter((m): m is RegExpExecArray => m !== null);
    assert.ok(shown >= 1 && shown <= 5 * Math.ceil(seconds / 10 + 1), `${shown} refusal lines shown`);
    assert.ok(summaries.length >= 1, 'a summary line says how many more were left out');
    assert.equal(shown + summaries.reduce((n, m) => n + Number(m[1]), 0), counted, 'lines shown + suppressed = refusedClear');
  });

  it('3,000 refused IKE_SA_INIT datagrams/s to the host agent: its refusals are summarised too', async () => {
    const log = await start('log-flood-ike');
    await lab.control.post('/v1/nics/nic-1/trust-anchor', { psk: '11'.repeat(32) }); // enrolled: the agent listens
    const nic = await lab.nic('nic-1');
    const before = log.logBytes();
    const f = await flood(nic.address, nic.ports.ike, (i) => ikeInitWithCriticalPayload(i + 1), 3000, 3);
    await lab.stopEmulator('SIGTERM');
    const grown = log.logBytes() - before;
    const seconds = f.ms / 1000;
    const lines = log.log().split('\n');
    const refusals = lines.filter((l) => l.includes('unsupported critical payload')).length;
    console.log(`      ${f.sent} IKE_SA_INIT in ${seconds.toFixed(1)} s; ${refusals} refusal lines; log grew ${grown} bytes`);
    assert.ok(refusals >= 1, 'the agent said it refused them');
    assert.ok(refusals <= 10, `${refusals} refusal lines for ${f.sent} datagrams`);
    assert.ok(lines.some((l) => /'ike\.init-refused': \d+ more suppressed in \d+ s/.test(l)), 'a summary line for the rest');
    assert.ok(grown <= 10_000 * seconds, `log grew ${grown} bytes in ${seconds.toFixed(1)} s: over 10 KB/s`);
  });
});
