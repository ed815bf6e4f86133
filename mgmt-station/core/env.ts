/**
 * What the station's core (mgmt-station/core/) gets from outside instead of reaching for it: the time, timers,
 * randomness and its sockets (STYLE.md "inject the clock from day one"). The process gives it the real ones
 * (mgmt-station/context.ts); the simulator (sim/) gives virtual time, a seeded PRNG and a simulated network, so
 * the same code runs in both. Nothing in core/ reads a clock, starts a timer, draws randomness or opens a socket
 * by itself (test/lib/sans-io-imports.test.ts checks).
 */

export interface Timer {
  cancel(): void;
}

export interface Endpoint { address: string; port: number }

export type DatagramHandler = (bytes: Uint8Array, from: Endpoint) => void;

/** Polling for an awaited answer (lib/answer-poll.ts in the process; nothing in the simulator). */
export interface AnswerPolling {
  open(): void;
  sent(): void;
  close(): void;
}

/** The station's one secure UDP socket, dispatching arriving datagrams by SPI (mgmt-station/udp-mux.ts). */
export interface SecurePort {
  readonly address: string;
  readonly port: number;
  register(spi: number, h: DatagramHandler): void;
  unregister(spi: number): void;
  send(bytes: Uint8Array, port: number, address: string): void;
  readonly poll: AnswerPolling | null;
}

/**
 * One NIC's IKE exchanges' way to the network (the host agent answers from its IKE port). In the process it is a
 * channel of the station's one shared IKE socket, which dispatches arriving datagrams by IKE SPI
 * (mgmt-station/ike-mux.ts); in the simulator a socket of its own.
 */
export interface IkeSocket {
  send(bytes: Uint8Array, port: number, address: string): void;
  close(): Promise<void>;
}

export interface StationEnv {
  /** Wall-clock ms: what the store records (lease expiry, log times). */
  now(): number;
  /** Monotonic ms: deadlines and round-trip times. */
  mono(): number;
  /** Run `f` after `ms` (a timer that does not keep a process alive). */
  after(ms: number, f: () => void): Timer;
  random(n: number): Uint8Array;
  /** A channel for IKE on `bind` (any port); the datagrams for its IKE SAs go to `onMessage`. */
  openIkeSocket(bind: string, onMessage: DatagramHandler): Promise<IkeSocket>;
}

/** A promise that settles after `ms` of the env's time. */
export function sleep(env: StationEnv, ms: number): Promise<void> {
  return new Promise((r) => env.after(ms, r));
}
