/**
 * AES-GCM nonce reuse in a capture (RFC 4106 §3.1, RFC 4303 §2): for every ESP packet on a NIC's secure port, in
 * both directions, the tuple (NIC address, direction, SPI, 8-byte IV) must name one packet only. Two captured
 * packets with the same tuple and different bytes were sealed under the same key and nonce: a reuse. The same
 * bytes twice (a retransmission is a new packet, but a replayed datagram is not) are counted apart, not as a reuse.
 *
 * Sync and heartbeat frames (they start with the reserved SPI 0xFFFFFFFF, wire/sync-frame.ts, carry no ESP IV) are
 * left out. Under the esp+ah policy the ESP packet follows a 28-byte AH header (next header 50, payload length 5).
 * The key is the NIC's address, not the station's address and port: each CLI run of a station binds a new port,
 * and a reuse across two runs is exactly what this must catch.
 */
import { capturedDatagrams, type CapturedDatagram } from './tshark.js';

export interface NonceReuse {
  nic: string;
  direction: 'to-nic' | 'from-nic';
  spi: string;
  iv: string;
  frames: [number, number];
  files: [string, string];
}

export interface NonceReport {
  /** ESP packets checked, both directions. */
  espPackets: number;
  toNic: number;
  fromNic: number;
  /** Sync and heartbeat frames left out (SPI 0xFFFFFFFF). */
  syncFrames: number;
  /** The same datagram seen again (byte for byte): replays or captured twice. Not a reuse. */
  identicalRepeats: number;
  /** Distinct packets under one (SPI, IV): must be empty. */
  reused: NonceReuse[];
}

export interface NicOnWire {
  address: string;
  /** The NIC's secure port (664 in address-per-NIC mode). */
  securePort: number;
  /** esp+ah: ESP follows an AH header. */
  ah?: boolean;
}

const AH_LENGTH = 28;

/** The ESP packet of a datagram on the secure port, or null for a sync or heartbeat frame (or a runt). */
function espOf(payload: Uint8Array, ah: boolean): Uint8Array | null {
  if (payload.length >= 4 && payload[0] === 0xff && payload[1] === 0xff && payload[2] === 0xff && payload[3] === 0xff) return null;
  const esp = ah ? (payload[0] === 50 && payload[1] === 5 ? payload.subarray(AH_LENGTH) : null) : payload;
  if (!esp || esp.length < 8 + 8 + 16) return null;
  return esp;
}

/** Check one or more capture files together (one key can be reused across files: a restart between captures). */
export async function checkNonces(files: string[], nics: NicOnWire[]): Promise<NonceReport> {
  const seen = new Map<string, { bytes: string; frame: number; file: string }>();
  const report: NonceReport = { espPackets: 0, toNic: 0, fromNic: 0, syncFrames: 0, identicalRepeats: 0, reused: [] };
  for (const file of files) {
    const datagrams: CapturedDatagram[] = await capturedDatagrams(file);
    for (const d of datagrams) {
      const toNic = nics.find((n) => n.address === d.dst && n.securePort === d.dstPort);
      const fromNic = nics.find((n) => n.address === d.src && n.securePort === d.srcPort);
      const nic = toNic ?? fromNic;
      if (!nic) continue;
      const esp = espOf(d.payload, nic.ah === true);
      if (!esp) {
        report.syncFrames++;
        continue;
      }
      report.espPackets++;
      if (toNic) report.toNic++;
      else report.fromNic++;
      const direction = toNic ? 'to-nic' : 'from-nic';
      const spi = Buffer.from(esp.subarray(0, 4)).toString('hex');
      const iv = Buffer.from(esp.subarray(8, 16)).toString('hex');
      const key = `${nic.address}|${direction}|${spi}|${iv}`;
      const bytes = Buffer.from(esp).toString('hex');
      const had = seen.get(key);
      if (!had) seen.set(key, { bytes, frame: d.frame, file });
      else if (had.bytes === bytes) report.identicalRepeats++;
      else report.reused.push({ nic: nic.address, direction, spi, iv, frames: [had.frame, d.frame], files: [had.file, file] });
    }
  }
  return report;
}
