/**
 * The two request/answer workloads of the bench, as the station would put them on the wire:
 *  - clear ASF Presence Ping (DSP0136 §3.2.4.2, UDP 623), RMCP sequence 0xFF (no ACK), answered by a
 *    28-byte Presence Pong; the same bytes ipmitool sends (catalogue §5.3), so ipmi_sim answers them too;
 *  - secure System State Request (DESIGN §2.2, UDP 664): inner UDP + RMCP/ASF sealed by the station's
 *    side of an SA pair (SaEndpoint 'station'), the answer opened and checked the same way.
 */
import { randomBytes } from 'node:crypto';
import { SaEndpoint } from '../wire/sa-endpoint.js';
import { nicAnswerIv, stationIv } from '../wire/sync-iv.js';
import { encodeInnerUdp, decodeInnerUdp } from '../wire/esp.js';
import { RMCP_PORT } from '../wire/rmcp.js';
import type { SaPair, SecurityPolicy, EspTransform } from '../wire/sa.js';
import type { AhEndpoints } from '../wire/ah.js';
import type { Probe } from './udp-load.js';

const PING_TYPE = 0x80;
const PONG_TYPE = 0x40;
const STATE_RESPONSE_TYPE = 0x42;

/** RMCP (06 00 FF 06) + ASF header (IANA 4542, type, tag, 00, length 0). */
function rmcpAsf(type: number, tag: number): Uint8Array {
  return Uint8Array.of(0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, type, tag, 0x00, 0x00);
}

/** Tag of an RMCP/ASF datagram of `type` (IANA 4542), else -1. */
function tagOf(b: Uint8Array, type: number): number {
  if (b.length < 12 || b[0] !== 0x06 || (b[3] & 0x80) !== 0 || b[4] !== 0 || b[5] !== 0 || b[6] !== 0x11 || b[7] !== 0xbe) return -1;
  return b[8] === type ? b[9] : -1;
}

export function presencePingProbe(): Probe {
  const pings = Array.from({ length: 256 }, (_, tag) => rmcpAsf(PING_TYPE, tag));
  return {
    request: (tag) => pings[tag],
    answerTag: (b) => (b.length === 28 ? tagOf(b, PONG_TYPE) : -1),
  };
}

/** A random SA pair as manual keying would make it (RFC 4301 §4.5); SPIs >= 256 (RFC 4303 §2.1). */
export function randomSaPair(policy: SecurityPolicy = 'esp', transform: EspTransform = 'aes-gcm-16'): SaPair {
  const spi = () => 0x100 + (randomBytes(4).readUInt32BE(0) % 0xfffffe00);
  const dir = () => ({
    spi: spi(),
    encKey: new Uint8Array(randomBytes(transform === 'aes-gcm-16' ? 20 : 36)),
    ahSpi: policy === 'esp+ah' ? spi() : 0,
    ahKey: policy === 'esp+ah' ? new Uint8Array(randomBytes(32)) : new Uint8Array(0),
  });
  return { generation: 0, transform, esn: false, policy, toNic: dir(), fromNic: dir(), origin: 'manual' };
}

/**
 * System State Request under the station side of `sa`, in sync epoch `synced` (lib/sync-client.ts). `local` is the
 * client socket's address, `nic` the NIC's secure endpoint (both go into the AH pseudo-header under esp+ah).
 */
export function secureStateProbe(sa: SaPair, local: { address: string; port: number }, nic: { address: string; port: number }, synced: { epoch: number; p: bigint }): Probe & { endpoint: SaEndpoint } {
  const ep = new SaEndpoint(sa, 'station', { outStart: synced.p, inFloor: 0n });
  const out: AhEndpoints = { srcAddr: local.address, srcPort: local.port, dstAddr: nic.address, dstPort: nic.port };
  const inn: AhEndpoints = { srcAddr: nic.address, srcPort: nic.port, dstAddr: local.address, dstPort: local.port };
  const inner = Array.from({ length: 256 }, (_, tag) => encodeInnerUdp(local.port, RMCP_PORT, rmcpAsf(0x82, tag)));
  return {
    endpoint: ep,
    // As the station does (mgmt-station/core/session.ts), the request is sealed with its sync epoch in the IV and the
    // keystream of the next one prepared (SaEndpoint.prepareNext) before it is sent: both before the clock starts,
    // like building a ping. The answer's keystream would need the NIC's IV (derived from this request's); it is
    // opened in full.
    request: (tag) => {
      const seq = ep.nextOutSeq;
      const sealed = ep.seal(inner[tag], out, stationIv(synced.epoch, seq));
      ep.prepareNext(stationIv(synced.epoch, seq + 1n), nicAnswerIv(synced.epoch, Number(seq & 0xffffffffn), 1));
      return sealed;
    },
    answerTag: (b) => {
      try {
        const udp = decodeInnerUdp(ep.open(b, inn).payload);
        return tagOf(udp.body, STATE_RESPONSE_TYPE);
      } catch {
        return -1;
      }
    },
  };
}
