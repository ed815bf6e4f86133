/**
 * A raw UDP peer on loopback for end-to-end tests: send crafted datagrams to a NIC, wait for particular
 * answers, and blast many datagrams at a bounded rate (so loss in the kernel's receive buffer does not turn
 * a robustness test into a test of socket buffers). The socket is dgram-as-promised's (bind, send and close as
 * promises); datagrams arrive through its node:dgram socket's 'message' events, matched against waiters.
 */
import DgramAsPromised, { type SocketAsPromised } from 'dgram-as-promised';

export interface Received { bytes: Uint8Array; from: { address: string; port: number } }

export class UdpPeer {
  readonly received: Received[] = [];
  /** Keep at most this many received datagrams (a blast makes the NIC answer a lot). */
  keep = 10000;
  private waiters = new Set<{ match: (r: Received) => boolean; resolve: (r: Received) => void }>();

  private constructor(private readonly socket: SocketAsPromised) {
    socket.socket.on('message', (msg, rinfo) => {
      const r: Received = { bytes: new Uint8Array(msg), from: { address: rinfo.address, port: rinfo.port } };
      for (const w of this.waiters) {
        if (w.match(r)) {
          this.waiters.delete(w);
          w.resolve(r);
        }
      }
      if (this.received.length < this.keep) this.received.push(r);
    });
    socket.socket.on('error', () => undefined); // ICMP port unreachable etc.: irrelevant here
  }

  static async open(address = '127.0.0.1'): Promise<UdpPeer> {
    const s = DgramAsPromised.createSocket('udp4');
    await s.bind({ address, port: 0 });
    return new UdpPeer(s);
  }

  get address(): string {
    return this.socket.address().address;
  }

  get port(): number {
    return this.socket.address().port;
  }

  async send(bytes: Uint8Array, port: number, address: string): Promise<void> {
    await this.socket.send(bytes, port, address);
  }

  /** Wait for the first datagram (from now on) that `match`es; null after `timeoutMs`. */
  next(match: (r: Received) => boolean, timeoutMs = 2000): Promise<Received | null> {
    return new Promise((resolve) => {
      const w = {
        match,
        resolve: (r: Received) => {
          clearTimeout(t);
          resolve(r);
        },
      };
      const t = setTimeout(() => {
        this.waiters.delete(w);
        resolve(null);
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  /** Send then wait for an answer. */
  async request(bytes: Uint8Array, port: number, address: string, match: (r: Received) => boolean, timeoutMs = 2000): Promise<Received | null> {
    const p = this.next(match, timeoutMs);
    await this.send(bytes, port, address);
    return p;
  }

  /**
   * Send every datagram `make(i)` (i = 0..count-1) gives, `batch` at a time: after each batch wait until the
   * socket has drained (every send callback), then `pace(sent)` (e.g. until the receiver has caught up), so the
   * rate stays bounded. Returns how many were sent.
   */
  async blast(
    count: number,
    make: (i: number) => { bytes: Uint8Array; port: number; address: string },
    o: { batch?: number; pace?: (sent: number) => Promise<void> } = {},
  ): Promise<number> {
    const batch = o.batch ?? 200;
    let sent = 0;
    while (sent < count) {
      const n = Math.min(batch, count - sent);
      const sends: Promise<void>[] = [];
      for (let k = 0; k < n; k++) {
        const d = make(sent + k);
        sends.push(this.send(d.bytes, d.port, d.address).catch(() => undefined));
      }
      await Promise.all(sends);
      sent += n;
      if (o.pace) await o.pace(sent);
      else await new Promise((r) => setImmediate(r));
    }
    return sent;
  }

  close(): Promise<void> {
    for (const w of this.waiters) this.waiters.delete(w);
    return this.socket.close();
  }
}

