/**
 * UDP sockets for the emulator's NIC ports, in two implementations behind one small interface:
 *
 * - `batch` (default where it is built): lib/native/udp_batch.c, recvmmsg(2)/sendmmsg(2) on a socket that libuv
 *   watches in Node's own event loop. When the socket is readable, up to BATCH datagrams are read in one system
 *   call into one receive buffer shared by every socket of the process; the answers sent while they are handled
 *   are collected and leave together in one sendmmsg(2) at the end of the batch. Measured reason
 *   (docs/PERFORMANCE.md, "Batched UDP"): node:dgram's per-datagram system calls and callback made every Node
 *   responder slower than ipmi_sim with requests in flight.
 * - `dgram`: node:dgram, where the native part is not built (`npm ci` builds it with node-gyp; a failed build only
 *   warns) or when asked (`nic-emulator --udp-io dgram`).
 *
 * Both deliver each datagram as its own Buffer (a copy: a handler may keep it) with a fresh `{ address, port }`,
 * bind exclusively (never SO_REUSEADDR), and report bind failures as Errors with node's `code` (EADDRINUSE, ...).
 * IPv4 only, as the emulator's NIC addresses are.
 *
 * A shared socket (`bindSharedDatagramSocket`, batch only) is one socket for many local addresses, bound to the
 * wildcard: IP_PKTINFO gives each datagram's destination address, and each answer names the address it leaves
 * from, so one socket per port number serves a whole address-per-NIC fleet (nic-emulator/shared-ports.ts).
 */
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { literalLookup } from './literal-lookup.js';

export type UdpIo = 'batch' | 'dgram';
export interface Sender { address: string; port: number }
export type DatagramHandler = (msg: Buffer, from: Sender) => void;
/** A shared socket's handler: `local` is the datagram's destination address, a host-order integer (ipv4Value). */
export type SharedDatagramHandler = (msg: Buffer, from: Sender, local: number) => void;

export interface DatagramHandlers {
  message: DatagramHandler;
  /** Socket errors after the bind (a failed send, a failed read); the socket stays open. */
  error: (e: Error) => void;
  /**
   * After the answers sent by `message` have left: after each batch (batch), after each datagram (dgram). The
   * place for idle-time work that must not delay an answer.
   */
  sent?: () => void;
}

export interface DatagramSocket {
  readonly io: UdpIo;
  /** The bound port (useful after binding port 0). */
  readonly port: number;
  /** Sends one datagram (IPv4 address literal; empty ones are not sent); failures go to the socket's error handler, never throw. */
  send(bytes: Uint8Array, port: number, address: string): void;
  close(): Promise<void>;
}

/** One socket for many local addresses (bindSharedDatagramSocket). */
export interface SharedDatagramSocket {
  readonly port: number;
  /** Sends one datagram from local address `local` (host-order integer); failures go to the error handler. */
  send(bytes: Uint8Array, port: number, address: string, local: number): void;
  close(): Promise<void>;
}

export interface SharedDatagramHandlers extends Omit<DatagramHandlers, 'message'> {
  message: SharedDatagramHandler;
}

/** Counted, not logged per datagram: what a busy socket can lose without anything being wrong with it. */
export interface BatchUdpCounters {
  /** Datagrams longer than SLOT bytes, cut by the kernel and dropped (no RMCP/ASF message is that long). */
  truncated: number;
  /** Answers the kernel had no room for (EAGAIN/ENOBUFS on a full socket buffer), dropped as a full queue drops them. */
  sendQueueFull: number;
}

interface UdpBatchAddon {
  BATCH_MAX: number;
  /** int32 fields per datagram in its meta arrays (absent in builds before the local-address field). */
  META_FIELDS?: number;
  open(address: string, port: number, pktinfo: number): number;
  localPort(fd: number): number;
  recv(fd: number, buf: Uint8Array, slot: number, max: number, meta: Int32Array): number;
  send(fd: number, buf: Uint8Array, slot: number, count: number, meta: Int32Array): number;
  watch(fd: number, callback: () => void): unknown;
  unwatch(handle: unknown): void;
  close(fd: number): number;
}

/** Where `npm ci` (scripts/build-native.js) puts the addon; this file runs from dist/lib/. */
const ADDON_PATH = resolve(import.meta.dirname, '..', '..', 'lib', 'native', 'build', 'Release', 'udp_batch.node');

let addon: UdpBatchAddon | null = null;
let addonError: string | null = null;
try {
  addon = createRequire(import.meta.url)(ADDON_PATH) as UdpBatchAddon;
  if (addon.META_FIELDS !== 4) {
    // A build of an older udp_batch.c (three fields a datagram) would misread every batch: not used.
    addon = null;
    addonError = 'lib/native is an older build than lib/batch-udp.ts (its batches have another layout); rebuild it with \'npm run install\'';
  }
} catch (e) {
  addonError = `lib/native is not built (${(e as Error).message.split('\n')[0]}); run 'npm ci' or 'npm run install' with python3, make and g++ present`;
}

/** Why batched UDP cannot be used here, or null when it can. */
export function batchUdpUnavailable(): string | null {
  return addonError;
}

/** `batch` where the addon loaded, else `dgram`. */
export function defaultUdpIo(): UdpIo {
  return addon ? 'batch' : 'dgram';
}

/** Datagrams per recvmmsg/sendmmsg call; a datagram's room in the shared buffers. */
export const BATCH = 32;
export const SLOT = 2048;
/** int32 fields per datagram in a meta array (lib/native/udp_batch.c): length, IPv4 address, port, local address. */
export const META = 4;

// One receive batch and one send batch for the whole process: a drain runs to its end before another starts.
const recvBuf = Buffer.alloc(BATCH * SLOT);
const recvMeta = new Int32Array(BATCH * META);
const sendBuf = Buffer.alloc(BATCH * SLOT);
const sendMeta = new Int32Array(BATCH * META);
const oneMeta = new Int32Array(META);

const addressText = new Map<number, string>();
const addressValue = new Map<string, number>();
const ADDRESS_CACHE_MAX = 4096;

/** The dotted text of a host-order IPv4 integer (cached for the addresses seen most). */
export function addressOf(v: number): string {
  let s = addressText.get(v);
  if (s === undefined) {
    s = `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
    if (addressText.size >= ADDRESS_CACHE_MAX) addressText.clear();
    addressText.set(v, s);
  }
  return s;
}

/** The host-order integer of an IPv4 literal as an int32 (the addon's meta field), or -1 when it is not one. */
export function ipv4Value(address: string): number {
  const cached = addressValue.get(address);
  if (cached !== undefined) return cached;
  const parts = address.split('.');
  let v = -1;
  if (parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) {
    v = parts.reduce((a, p) => a * 256 + Number(p), 0) | 0; // int32, as the addon's meta array holds it
  }
  if (addressValue.size >= ADDRESS_CACHE_MAX) addressValue.clear();
  addressValue.set(address, v);
  return v;
}

/** EADDRINUSE for -98, and so on. */
export function errnoName(negErrno: number): string {
  try {
    return getSystemErrorName(negErrno);
  } catch {
    return `E${-negErrno}`;
  }
}

function errnoError(negErrno: number, syscall: string, detail: string): NodeJS.ErrnoException {
  const code = errnoName(negErrno);
  const e: NodeJS.ErrnoException = new Error(`${syscall} ${code} ${detail}`);
  e.code = code;
  e.errno = negErrno;
  e.syscall = syscall;
  return e;
}

/** The socket whose drain is running: its send() joins the batch instead of leaving at once. */
let draining: BatchUdpSocket | null = null;
let pending = 0;

class BatchUdpSocket implements DatagramSocket, SharedDatagramSocket {
  readonly io = 'batch' as const;
  readonly counters: BatchUdpCounters = { truncated: 0, sendQueueFull: 0 };
  private watch: unknown;
  private closed = false;

  private readonly onMessage: SharedDatagramHandler;
  private readonly onError: (e: Error) => void;
  private readonly onSent: (() => void) | undefined;

  constructor(private readonly native: UdpBatchAddon, private readonly fd: number, readonly port: number, handlers: SharedDatagramHandlers) {
    this.onMessage = handlers.message;
    this.onError = handlers.error;
    this.onSent = handlers.sent;
    const w = native.watch(fd, this.onReadable);
    if (typeof w === 'number') {
      native.close(fd);
      throw errnoError(w, 'uv_poll_start', `fd ${fd}`);
    }
    this.watch = w;
  }

  /** Readable: read batches until one comes back short (level-triggered, so anything left wakes us again). */
  private readonly onReadable = (): void => {
    const native = this.native;
    for (let round = 0; round < 4 && !this.closed; round++) {
      const n = native.recv(this.fd, recvBuf, SLOT, BATCH, recvMeta);
      if (n <= 0) {
        if (n < 0) this.onError(errnoError(n, 'recvmmsg', `fd ${this.fd}`));
        return;
      }
      draining = this;
      try {
        for (let i = 0; i < n && !this.closed; i++) {
          // (a handler may close its socket, a NIC losing power does: the rest of the batch is dropped, as dgram's would be)
          const len = recvMeta[i * META]!;
          if (len < 0) {
            this.counters.truncated++;
            continue;
          }
          const off = i * SLOT;
          const msg = Buffer.allocUnsafe(len);
          recvBuf.copy(msg, 0, off, off + len);
          this.onMessage(msg, { address: addressOf(recvMeta[i * META + 1]!), port: recvMeta[i * META + 2]! }, recvMeta[i * META + 3]!);
        }
      } finally {
        draining = null;
        this.flush();
      }
      if (!this.closed) this.onSent?.();
      if (n < BATCH) return;
    }
  };

  send(bytes: Uint8Array, port: number, address: string, local = 0): void {
    if (this.closed) return;
    const to = ipv4Value(address);
    if (to === -1 || !(port > 0 && port < 65536)) {
      this.onError(new Error(`send: not an IPv4 address and port: ${address}:${port}`));
      return;
    }
    if (draining === this && bytes.length <= SLOT) {
      if (pending === BATCH) this.flush();
      sendBuf.set(bytes, pending * SLOT);
      sendMeta[pending * META] = bytes.length;
      sendMeta[pending * META + 1] = to;
      sendMeta[pending * META + 2] = port;
      sendMeta[pending * META + 3] = local;
      pending++;
      return;
    }
    if (bytes.length === 0) return; // nothing the NIC sends is empty
    oneMeta[0] = bytes.length;
    oneMeta[1] = to;
    oneMeta[2] = port;
    oneMeta[3] = local;
    if (this.native.send(this.fd, bytes, bytes.length, 1, oneMeta) > 0) this.sendFailed(oneMeta[0]!, address, port);
  }

  private flush(): void {
    const count = pending;
    if (count === 0) return;
    pending = 0;
    if (this.native.send(this.fd, sendBuf, SLOT, count, sendMeta) === 0) return;
    for (let i = 0; i < count; i++) {
      const v = sendMeta[i * META]!;
      if (v < 0) this.sendFailed(v, addressOf(sendMeta[i * META + 1]!), sendMeta[i * META + 2]!);
    }
  }

  private sendFailed(negErrno: number, address: string, port: number): void {
    const code = errnoName(negErrno);
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'ENOBUFS') this.counters.sendQueueFull++;
    else this.onError(errnoError(negErrno, 'sendmmsg', `${address}:${port}`));
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (draining === this) pending = 0; // closed by its own handler: answers of a closing socket are not sent
      this.native.unwatch(this.watch);
      this.native.close(this.fd);
    }
    return Promise.resolve();
  }
}

class DgramSocket implements DatagramSocket {
  readonly io = 'dgram' as const;
  private closed = false;
  constructor(private readonly s: dgram.Socket, readonly port: number) {}

  send(bytes: Uint8Array, port: number, address: string): void {
    if (this.closed) return; // dgram would throw ERR_SOCKET_DGRAM_NOT_RUNNING
    // The firmware's answers are small Uint8Arrays that V8 keeps inside its heap (64 bytes or less); handing one
    // to dgram makes V8 move it out to a malloc'd ArrayBuffer first, and a copy into Node's Buffer pool is cheaper.
    this.s.send(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes), port, address);
  }

  close(): Promise<void> {
    this.closed = true;
    return new Promise((r) => {
      try {
        this.s.close(() => r());
      } catch {
        r(); // already closed
      }
    });
  }
}

/**
 * Binds `address:port` (port 0: any free port) exclusively and delivers its datagrams to `handlers.message`.
 * Rejects with the bind's error (`code` EADDRINUSE, EACCES, ...).
 */
export function bindDatagramSocket(io: UdpIo, address: string, port: number, handlers: DatagramHandlers): Promise<DatagramSocket> {
  if (io === 'batch') return bindNative(address, port, 0, handlers);
  return new Promise((resolveSocket, reject) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: false, lookup: literalLookup });
    s.once('error', reject);
    const { message, sent } = handlers;
    s.on('message', sent ? (m, r) => { message(m, r); sent(); } : (m, r) => message(m, r));
    s.bind({ address, port, exclusive: true }, () => {
      s.removeListener('error', reject);
      s.on('error', handlers.error);
      resolveSocket(new DgramSocket(s, s.address().port));
    });
  });
}

/**
 * Binds `address:port` (the wildcard 0.0.0.0, for a fleet) exclusively with IP_PKTINFO: each datagram reaches
 * `handlers.message` with its destination address, and `send` names the source address. Batched UDP only.
 */
export function bindSharedDatagramSocket(address: string, port: number, handlers: SharedDatagramHandlers): Promise<SharedDatagramSocket & { counters: BatchUdpCounters }> {
  return bindNative(address, port, 1, handlers);
}

/** A native socket bound to `address:port` (with IP_PKTINFO when `pktinfo` is 1), or the bind's error. */
function bindNative(address: string, port: number, pktinfo: 0 | 1, handlers: DatagramHandlers | SharedDatagramHandlers): Promise<BatchUdpSocket> {
  const native = addon;
  if (!native) return Promise.reject(new Error(`batched UDP unavailable: ${addonError}`));
  try {
    const fd = native.open(address, port, pktinfo);
    if (fd < 0) return Promise.reject(errnoError(fd, 'bind', `${address}:${port}`));
    const bound = native.localPort(fd);
    if (bound < 0) {
      native.close(fd);
      return Promise.reject(errnoError(bound, 'getsockname', `${address}:${port}`));
    }
    return Promise.resolve(new BatchUdpSocket(native, fd, bound, handlers));
  } catch (e) {
    return Promise.reject(e as Error);
  }
}

/** The batch counters of a socket, or null for a dgram one. */
export function batchCounters(s: DatagramSocket): BatchUdpCounters | null {
  return s instanceof BatchUdpSocket ? s.counters : null;
}

/** For the bench's load generator (bench/batch-load.ts): the addon itself, or null with batchUdpUnavailable(). */
export function udpBatchAddon(): UdpBatchAddon | null {
  return addon;
}
export type { UdpBatchAddon };
