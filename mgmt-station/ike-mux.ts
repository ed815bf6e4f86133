/**
 * The station's IKE sockets: one UDP socket per local address for every NIC's key exchange (was one socket per NIC:
 * a file descriptor and ~10 KiB each, issue 16), arriving datagrams dispatched by IKE SPI.
 *
 * Every IKE message names its IKE SA by the two 8-byte SPIs at the start of its header (RFC 7296 §3.1: initiator's,
 * responder's; the responder's is zero in the first IKE_SA_INIT). A key exchange (core/key-exchange.ts) gets a
 * channel (`IkeSocket`); the SPIs of the messages it sends are the ones its answers will carry, so the dispatcher
 * learns them from what the channel sends: both non-zero SPIs of each outgoing header map to that channel (a SPI
 * another channel already holds is left to it). An arriving datagram goes to the channel that holds its initiator
 * SPI, else its responder SPI (an IKE SA the peer rekeyed has the peer's new SPI first, RFC 7296 §2.18), and only if
 * it comes from the endpoint that channel last sent to (the NIC's address and IKE port): a peer that copies another
 * NIC's SPI reaches nobody. An IKE SA made by a rekey (CREATE_CHILD_SA, RFC 7296 §1.3.2) has SPIs that travelled
 * in a payload, not a header: a request the peer sends on it before the channel has sent anything there (a DELETE
 * of that IKE SA, its next rekey) carries no SPI the table knows. Such a datagram goes to the one channel that talks
 * to its sender (the NIC's address and IKE port), which learns its SPIs; with none, or several, it is dropped.
 * Anything else is counted (`dropped`) and dropped. A channel keeps the SPIs of its last MAX_SPIS_PER_CHANNEL IKE
 * SAs (rekeys make new ones), so the table stays bounded by the NICs' count.
 */
import dgram from 'node:dgram';
import type { DatagramHandler, Endpoint, IkeSocket } from './core/env.js';
import { literalLookup } from '../lib/literal-lookup.js';

/** The IKE header (RFC 7296 §3.1) is 28 bytes; anything shorter is not IKE. */
const IKE_HEADER_LENGTH = 28;
/** SPIs remembered per channel: the IKE SA, the one it was rekeyed from, and slack for a rekey collision. */
export const MAX_SPIS_PER_CHANNEL = 8;

function spiAt(b: Uint8Array, at: number): bigint {
  return new DataView(b.buffer, b.byteOffset + at, 8).getBigUint64(0);
}

/** One key exchange's share of the socket. */
interface Channel {
  onMessage: DatagramHandler;
  /** Where it last sent: only datagrams from there are its own. */
  peer: Endpoint | null;
  /** The SPIs it holds, oldest first. */
  spis: bigint[];
  closed: boolean;
}

/** The dispatch, socket-free (unit-tested alone): channels, their SPIs, and what was dropped. */
export class IkeDispatch {
  private readonly bySpi = new Map<bigint, Channel>();
  /** Live channels by the endpoint they last sent to (`address:port`). */
  private readonly byPeer = new Map<string, Set<Channel>>();
  private channels = 0;
  readonly dropped = { short: 0, unknownSpi: 0, wrongPeer: 0 };

  constructor(private readonly transmit: (bytes: Uint8Array, port: number, address: string) => void, private readonly onEmpty: () => void = () => undefined) {}

  /** Live channels (the shell closes the socket when none is left). */
  get size(): number {
    return this.channels;
  }

  /** SPIs in the table (bounded by MAX_SPIS_PER_CHANNEL per channel). */
  get spiCount(): number {
    return this.bySpi.size;
  }

  open(onMessage: DatagramHandler): IkeSocket {
    const ch: Channel = { onMessage, peer: null, spis: [], closed: false };
    this.channels++;
    return {
      send: (bytes, port, address) => {
        if (ch.closed) return;
        if (bytes.length >= IKE_HEADER_LENGTH) {
          this.learn(ch, spiAt(bytes, 0));
          this.learn(ch, spiAt(bytes, 8));
        }
        if (ch.peer?.port !== port || ch.peer.address !== address) {
          this.forgetPeer(ch);
          ch.peer = { address, port };
          const k = `${address}:${port}`;
          let set = this.byPeer.get(k);
          if (!set) this.byPeer.set(k, (set = new Set()));
          set.add(ch);
        }
        this.transmit(bytes, port, address);
      },
      close: async () => {
        if (ch.closed) return;
        ch.closed = true;
        this.forgetPeer(ch);
        for (const s of ch.spis) if (this.bySpi.get(s) === ch) this.bySpi.delete(s);
        ch.spis = [];
        if (--this.channels === 0) this.onEmpty();
      },
    };
  }

  private forgetPeer(ch: Channel): void {
    if (!ch.peer) return;
    const k = `${ch.peer.address}:${ch.peer.port}`;
    const set = this.byPeer.get(k);
    if (set?.delete(ch) && set.size === 0) this.byPeer.delete(k);
  }

  private learn(ch: Channel, spi: bigint): void {
    if (spi === 0n) return;
    const held = this.bySpi.get(spi);
    if (held === ch) return;
    if (held !== undefined) return; // another channel's (a collision, or a peer copying it): first come keeps it
    this.bySpi.set(spi, ch);
    ch.spis.push(spi);
    if (ch.spis.length > MAX_SPIS_PER_CHANNEL) {
      const old = ch.spis.shift()!;
      if (this.bySpi.get(old) === ch) this.bySpi.delete(old);
    }
  }

  /** An arriving datagram: to the channel of its initiator SPI, else of its responder SPI, from that channel's peer. */
  receive(bytes: Uint8Array, from: Endpoint): void {
    if (bytes.length < IKE_HEADER_LENGTH) {
      this.dropped.short++;
      return;
    }
    let known = false;
    for (const at of [0, 8]) {
      const ch = this.bySpi.get(spiAt(bytes, at));
      if (!ch) continue;
      known = true;
      if (ch.peer && ch.peer.port === from.port && ch.peer.address === from.address) {
        ch.onMessage(bytes, from);
        return;
      }
    }
    if (known) {
      this.dropped.wrongPeer++;
      return;
    }
    // An IKE SA the channel has not sent on yet (made by a rekey): the one channel that talks to this sender.
    const chans = this.byPeer.get(`${from.address}:${from.port}`);
    if (chans?.size === 1) {
      const [ch] = chans;
      this.learn(ch, spiAt(bytes, 0));
      this.learn(ch, spiAt(bytes, 8));
      ch.onMessage(bytes, from);
      return;
    }
    this.dropped.unknownSpi++;
  }
}

/** The process's shared IKE sockets, one per local address, each bound on first use and closed with its last channel. */
const shared = new Map<string, Promise<IkeDispatch>>();
/** The same, bound: for ikeDrops(). */
const bound = new Map<string, IkeDispatch>();
/** Dispatchers whose socket closed (their last channel did): a channel is never opened on one. */
const retired = new WeakSet<IkeDispatch>();

/** What the shared IKE sockets dropped, summed, and how many are open. */
export function ikeDrops(): { short: number; unknownSpi: number; wrongPeer: number; sockets: number } {
  const sum = { short: 0, unknownSpi: 0, wrongPeer: 0, sockets: bound.size };
  for (const d of bound.values()) {
    sum.short += d.dropped.short;
    sum.unknownSpi += d.dropped.unknownSpi;
    sum.wrongPeer += d.dropped.wrongPeer;
  }
  return sum;
}

/** A channel on the shared IKE socket of `bind` (StationEnv.openIkeSocket of the process: mgmt-station/context.ts). */
export async function openSharedIkeSocket(bind: string, onMessage: DatagramHandler): Promise<IkeSocket> {
  for (;;) {
    let p = shared.get(bind);
    if (!p) {
      p = bindShared(bind);
      shared.set(bind, p);
      p.catch(() => shared.delete(bind));
    }
    const d = await p;
    if (!retired.has(d)) return d.open(onMessage);
  }
}

async function bindShared(bind: string): Promise<IkeDispatch> {
  // An IPv4 literal (every NIC's address) is sent inside send(), not after dns.lookup()'s deferred callback.
  const s = dgram.createSocket({ type: 'udp4', lookup: literalLookup });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind({ address: bind, port: 0 }, () => {
      s.removeListener('error', reject);
      resolve();
    });
  });
  s.on('error', () => undefined);
  const d: IkeDispatch = new IkeDispatch(
    (bytes, port, address) => s.send(bytes, port, address),
    () => {
      // The last channel closed: so does the socket (a process with no key exchange left holds none).
      retired.add(d);
      shared.delete(bind);
      bound.delete(bind);
      s.close();
    },
  );
  bound.set(bind, d);
  s.on('message', (msg, rinfo) => d.receive(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), { address: rinfo.address, port: rinfo.port }));
  return d;
}
