/**
 * A pure test rig for firmware/ipmi/ipmi-lan.ts: one IpmiLan on seeded randomness, an emulated host whose
 * state follows the host-command effects (firmware/host-state.ts transition()), a virtual clock, and helpers
 * that drive the spec-written test console (ipmi-test-console.ts) through a session set-up.
 */
import assert from 'node:assert/strict';
import { IpmiLan, type IpmiLanOptions } from '../../firmware/ipmi/ipmi-lan.js';
import type { IpmiEffect, IpmiEndpoint } from '../../firmware/ipmi/ipmi-types.js';
import type { IpmiUser } from '../../firmware/ipmi/users.js';
import { transition, type HostState } from '../../firmware/host-state.js';
import { prng } from './prng.js';
import { IpmiTestConsole, type ConsoleOptions, type Response } from './ipmi-test-console.js';

export const USERS: IpmiUser[] = [
  { name: 'admin', password: 'secret-pw', privilege: 'administrator', enabled: true },
  { name: 'oper', password: 'op-pw', privilege: 'operator', enabled: true },
  { name: 'viewer', password: 'view-pw', privilege: 'user', enabled: true },
  { name: 'gone', password: 'gone-pw', privilege: 'administrator', enabled: false },
];
export const GUID = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
export const CONSOLE: IpmiEndpoint = { address: '127.0.77.10', port: 40001 };

export class Rig {
  readonly lan: IpmiLan;
  readonly rnd: ReturnType<typeof prng>;
  host: { state: HostState } = { state: 'up' };
  now = 1_000_000;
  readonly logs: (IpmiEffect & { kind: 'log' })[] = [];
  readonly hostCommands: (IpmiEffect & { kind: 'host-command' })[] = [];

  constructor(o: { seed?: number } & Partial<Omit<IpmiLanOptions, 'random'>> = {}) {
    this.rnd = prng(o.seed ?? 1);
    const lanRandom = prng((o.seed ?? 1) ^ 0x5eed);
    this.lan = new IpmiLan({ users: USERS, guid: GUID, ...o, random: (n) => lanRandom.bytes(n) });
  }

  /** Hands one datagram to the BMC, applies its host commands, keeps its logs; returns the datagrams it sends. */
  deliver(from: IpmiEndpoint, d: Uint8Array): Uint8Array[] {
    return this.apply(this.lan.receive(from, d, this.now, this.host), from);
  }

  /** Exactly one answer, or null for none (more than one is a test failure). */
  one(from: IpmiEndpoint, d: Uint8Array): Uint8Array | null {
    const out = this.deliver(from, d);
    assert.ok(out.length <= 1, `expected at most one answer, got ${out.length}`);
    return out[0] ?? null;
  }

  advance(ms: number): IpmiEffect[] {
    this.now += ms;
    const effects = this.lan.handleTimeout(this.now);
    this.apply(effects);
    return effects;
  }

  private apply(effects: IpmiEffect[], from?: IpmiEndpoint): Uint8Array[] {
    const sent: Uint8Array[] = [];
    for (const e of effects) {
      if (e.kind === 'send') {
        if (from) assert.deepEqual(e.to, from, 'answers go back to the sender');
        sent.push(e.bytes);
      } else if (e.kind === 'log') this.logs.push(e);
      else {
        this.hostCommands.push(e);
        this.host = { state: transition(this.host.state, e.command).to };
      }
    }
    return sent;
  }

  console(o: Partial<ConsoleOptions> & { user?: string; password?: string } = {}): IpmiTestConsole {
    return new IpmiTestConsole({ suite: 17, user: 'admin', password: 'secret-pw', random: (n) => this.rnd.bytes(n), ...o });
  }

  /** Open Session, RAKP 1/2, RAKP 3/4 with `c` from `from`; asserts every step succeeded. */
  establish(c: IpmiTestConsole, from: IpmiEndpoint = CONSOLE): void {
    const os = c.onOpenSession(this.one(from, c.openSession())!);
    assert.equal(os.status, 0, `Open Session status ${os.status}`);
    const r2 = c.onRakp2(this.one(from, c.rakp1())!);
    assert.deepEqual([r2.status, r2.hmacOk], [0, true], 'RAKP 2');
    const r4 = c.onRakp4(this.one(from, c.rakp3())!);
    assert.deepEqual([r4.status, r4.icvOk], [0, true], 'RAKP 4');
  }

  /** One in-session request and its verified, decrypted answer. */
  cmd(c: IpmiTestConsole, netFn: number, cmd: number, data: number[] = [], from: IpmiEndpoint = CONSOLE): Response & { sequence: number } {
    const d = this.one(from, c.request(netFn, cmd, data));
    assert.ok(d, `no answer to netFn ${netFn.toString(16)} cmd ${cmd.toString(16)}`);
    const r = c.onResponse(d);
    assert.deepEqual([r.netFn, r.cmd], [netFn + 1, cmd]);
    return r;
  }
}
