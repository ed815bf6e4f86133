/**
 * One socket per port number for a whole address-per-NIC fleet (issue 16): 0.0.0.0:623, :664 and the IKE port,
 * each bound once with IP_PKTINFO (lib/batch-udp.ts bindSharedDatagramSocket). A datagram goes to the NIC whose
 * address it was sent to (its destination, from IP_PKTINFO), and a NIC's answers leave from its own address, so
 * to a peer (FreeIPMI rmcpping, the station) the fleet looks exactly as with a socket per NIC and port. A NIC then
 * costs no file descriptor: 100,000 enrolled NICs fit in RLIMIT_NOFILE 20,000.
 *
 * Whether a NIC "listens" on a port is the NIC's own flag (nic-node.ts sets it where it would bind or close a
 * socket); a datagram to an address with no NIC, or to a NIC port that is not open (664 before an SA, the IKE
 * port while the host is down), is a counted drop (`SharedPortCounters`), where the kernel would have sent an
 * ICMP port unreachable for a socket per NIC.
 *
 * The wildcard bind takes the port number on every local address: while such an emulator runs, no other process
 * can bind 127.x.y.z:623 (or 664, or the IKE port), and it cannot start while one does (EADDRINUSE). Hence the
 * choice in fleet.ts: shared sockets for large fleets (or when asked), a socket per NIC and port for small ones.
 */
import type { NicPort } from '../firmware/nic-machine.js';
import { bindSharedDatagramSocket, type BatchUdpCounters, type SharedDatagramSocket, type Sender } from '../lib/batch-udp.js';

/** What a NIC gives the shared ports: its handler for a datagram on one of its ports. */
export interface SharedPortsNic {
  onSharedDatagram(port: NicPort, msg: Buffer, from: Sender): boolean;
  /** After a batch of datagrams was answered (the socket's `sent` hook): idle-time work (keystreams). */
  answersSent(): void;
}

export interface SharedPortCounters {
  /** Datagrams to an address no NIC of this fleet has. */
  noNic: number;
  /** Datagrams to a NIC's port it has not opened (664 before its first SA, the IKE port while its host is down). */
  portClosed: number;
}

export class SharedPorts {
  readonly counters: SharedPortCounters = { noNic: 0, portClosed: 0 };
  private readonly byAddress = new Map<number, SharedPortsNic>();
  private sockets: Partial<Record<NicPort, SharedDatagramSocket & { counters: BatchUdpCounters }>> = {};
  /** NICs that sent a secure answer in the batch being handled: their keystream preparation runs after it. */
  private readonly answered = new Set<SharedPortsNic>();

  constructor(private readonly ports: Record<NicPort, number>, private readonly onError: (port: NicPort, e: Error) => void) {}

  /** Binds the three wildcard sockets; rejects with the first bind's error (EADDRINUSE, EACCES), closing the others. */
  async open(address = '0.0.0.0'): Promise<void> {
    try {
      for (const port of ['clear', 'secure', 'ike'] as NicPort[]) {
        this.sockets[port] = await bindSharedDatagramSocket(address, this.ports[port], {
          message: (msg, from, local) => this.deliver(port, msg, from, local),
          error: (e) => this.onError(port, e),
          sent: () => this.flushAnswered(),
        });
      }
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  add(address: number, nic: SharedPortsNic): void {
    this.byAddress.set(address >>> 0, nic);
  }

  /** Sends from `local` (the NIC's address as a host-order integer) on port `port`'s shared socket. */
  send(port: NicPort, bytes: Uint8Array, to: Sender, local: number, nic: SharedPortsNic, prepare: boolean): void {
    this.sockets[port]?.send(bytes, to.port, to.address, local | 0);
    if (prepare) this.answered.add(nic);
  }

  private deliver(port: NicPort, msg: Buffer, from: Sender, local: number): void {
    const nic = this.byAddress.get(local >>> 0);
    if (!nic) this.counters.noNic++;
    else if (!nic.onSharedDatagram(port, msg, from)) this.counters.portClosed++;
  }

  private flushAnswered(): void {
    if (this.answered.size === 0) return;
    for (const nic of this.answered) nic.answersSent();
    this.answered.clear();
  }

  /** The kernel-side drops of the three sockets (oversize datagrams, full send queues). */
  udpCounters(): BatchUdpCounters {
    const out = { truncated: 0, sendQueueFull: 0 };
    for (const s of Object.values(this.sockets)) {
      out.truncated += s.counters.truncated;
      out.sendQueueFull += s.counters.sendQueueFull;
    }
    return out;
  }

  async close(): Promise<void> {
    const all = Object.values(this.sockets);
    this.sockets = {};
    await Promise.all(all.map((s) => s.close()));
  }
}
