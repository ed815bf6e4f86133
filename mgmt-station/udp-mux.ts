/**
 * The station's one UDP socket for secure RMCP: every NIC session sends through it, and arriving datagrams
 * are dispatched by SPI (the first four bytes: the ESP SPI, or the AH SPI under esp+ah; for a sync frame, the SPI it
 * names after the reserved one) to the session that owns that inbound SA. Datagrams for an SPI nobody holds go to `onUnknownSpi` (adoption by SPI, DESIGN §5),
 * else they are counted and dropped.
 *
 * While a session's request awaits its answer, the mux's `poll` keeps the event loop polling instead of sleeping
 * (lib/answer-poll.ts, `--busy-poll-us`): the NIC's answer is then read without a wake-up.
 */
import dgram from 'node:dgram';
import { candidateSpis } from '../wire/sa-endpoint.js';
import { isSyncFrame } from '../wire/sync-frame.js';
import type { SecurePort } from './core/env.js';
import { AnswerPoll, DEFAULT_ANSWER_POLL_US } from '../lib/answer-poll.js';
import { literalLookup } from '../lib/literal-lookup.js';

export type DatagramHandler = (bytes: Uint8Array, from: { address: string; port: number }) => void;

export class UdpMux implements SecurePort {
  private readonly handlers = new Map<number, DatagramHandler>();
  readonly dropped = { short: 0, unknownSpi: 0 };
  onUnknownSpi: ((spi: number, bytes: Uint8Array, from: { address: string; port: number }) => void) | null = null;

  private constructor(private readonly socket: dgram.Socket, readonly address: string, readonly port: number, readonly poll: AnswerPoll) {
    socket.on('message', (msg, rinfo) => {
      if (msg.length < 4) {
        this.dropped.short++;
        return;
      }
      const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
      if (isSyncFrame(bytes)) {
        // A sync frame (wire/sync-frame.ts) names its SA by the SPI after the reserved one: the session's.
        const h = this.handlers.get(((bytes[4] << 24) | (bytes[5] << 16) | (bytes[6] << 8) | bytes[7]) >>> 0);
        if (h) h(bytes, { address: rinfo.address, port: rinfo.port });
        else this.dropped.unknownSpi++;
        return;
      }
      const { ahSpi, espSpi } = candidateSpis(bytes);
      const ah = ahSpi !== null ? this.handlers.get(ahSpi) : undefined;
      const spi = ah ? ahSpi! : espSpi;
      const h = ah ?? this.handlers.get(espSpi);
      const from = { address: rinfo.address, port: rinfo.port };
      if (h) h(bytes, from);
      else if (this.onUnknownSpi) this.onUnknownSpi(spi, bytes, from);
      else this.dropped.unknownSpi++;
    });
  }

  /**
   * Bind to a loopback address (the AH pseudo-header needs a concrete local address). `pollUs`: how long to poll
   * after sending a request (lib/answer-poll.ts; 0: sleep until the answer wakes the process).
   */
  static async open(address = '127.0.0.1', port = 0, pollUs = DEFAULT_ANSWER_POLL_US): Promise<UdpMux> {
    const poll = new AnswerPoll(pollUs);
    // An IPv4 literal (every NIC's address) is sent inside send(), not after dns.lookup()'s deferred callback.
    const s = dgram.createSocket({ type: 'udp4', lookup: literalLookup });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind({ address, port }, () => {
        s.removeListener('error', reject);
        resolve();
      });
    });
    s.on('error', () => undefined);
    const a = s.address();
    return new UdpMux(s, a.address, a.port, poll);
  }

  register(spi: number, h: DatagramHandler): void {
    this.handlers.set(spi >>> 0, h);
  }

  unregister(spi: number): void {
    this.handlers.delete(spi >>> 0);
  }

  send(bytes: Uint8Array, port: number, address: string): void {
    this.socket.send(bytes, port, address);
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }

  /** Don't keep the process alive for this socket alone. */
  unref(): void {
    this.socket.unref();
  }
}
