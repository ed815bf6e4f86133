/**
 * A reference point for the round-trip figures, not a product part: the smallest Node dgram responder that
 * answers an ASF Presence Ping (a fixed 28-byte Pong with the tag copied, as ipmi_sim does), with no
 * firmware, no effects and no checks. Its figures are the floor of any node:dgram responder on this machine
 * (the emulator on --udp-io dgram adds its own figure minus this one); the emulator's batched sockets
 * (lib/batch-udp.ts) go below it with requests in flight.
 *
 *   node dist/bench/echo-responder.js ADDRESS   -> prints the bound port on stdout, serves until killed
 */
import dgram from 'node:dgram';

// RMCP 06 00 FF 06 | ASF 00 00 11 BE, type 40, tag, 00, length 10 | IANA 4542, OEM 0, entities 81, interactions 00, reserved.
const PONG = Buffer.from('0600ff06' + '000011be' + '40000010' + '000011be' + '00000000' + '8100' + '000000000000', 'hex');
// The emulator's sockets answer without dns.lookup()'s deferred callback (lib/literal-lookup.ts).
const s = dgram.createSocket({ type: 'udp4', lookup: (address, _options, cb) => cb(null, address, 4) });
s.on('message', (m, r) => {
  if (m.length < 12 || m[8] !== 0x80) return;
  PONG[9] = m[9];
  s.send(PONG, r.port, r.address);
});
s.bind(0, process.argv[2] ?? '127.0.0.1', () => process.stdout.write(`${s.address().port}\n`));
