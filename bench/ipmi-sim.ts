/**
 * OpenIPMI's `ipmi_sim` (Debian `openipmi`) as the reference responder: started by the bench on loopback
 * with a minimal generated configuration (ipmi_lan(5): one LAN channel on a free port; one BMC added by a
 * command file, ipmi_sim(1)), run without persistence (-p) or console (-n). Its LAN code answers an ASF
 * Presence Ping with a 28-byte Pong (reference catalogue §5.4), which is the workload compared.
 */
import { accessSync, constants, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import dgram from 'node:dgram';
import type { ChildProcess } from 'node:child_process';
import { spawnChild, stopChild, tempDir } from './processes.js';
import { presencePingProbe } from './probes.js';

export function findIpmiSim(): string | null {
  for (const d of (process.env.PATH ?? '').split(delimiter).concat(['/usr/bin', '/usr/sbin'])) {
    const p = join(d, 'ipmi_sim');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** A UDP port on `address` that nothing is bound to right now. */
export async function freeUdpPort(address: string): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r, j) => {
    s.once('error', j);
    s.bind({ address, port: 0 }, () => r());
  });
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface IpmiSim { child: ChildProcess; address: string; port: number; stop(): Promise<void> }

/** `users`: extra ipmi_lan(5) user lines, e.g. a lanplus user: `user 2 true "NAME" "PASSWORD" admin 10 none md5 straight`. */
export async function startIpmiSim(bin: string, address: string, timeoutMs = 5000, users: string[] = []): Promise<IpmiSim> {
  const dir = tempDir('ipmi-sim');
  const port = await freeUdpPort(address);
  const conf = join(dir, 'lan.conf');
  const emu = join(dir, 'bmc.emu');
  writeFileSync(
    conf,
    [
      'name "lifeline-bench"',
      'set_working_mc 0x20',
      '  startlan 1',
      `    addr ${address} ${port}`,
      '    priv_limit admin',
      '    allowed_auths_callback none',
      '    allowed_auths_user none',
      '    allowed_auths_operator none',
      '    allowed_auths_admin none',
      '    guid a123456789abcdefa123456789abcdef',
      '  endlan',
      '  user 1 true "" "bench" user 10 none',
      ...users.map((u) => `  ${u}`),
      '',
    ].join('\n'),
  );
  // One BMC at IPMB address 0x20 (ipmi_sim(1) "mc_add"), enabled.
  writeFileSync(emu, ['mc_setbmc 0x20', 'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr', 'mc_enable 0x20', ''].join('\n'));
  const child = spawnChild(bin, ['-c', conf, '-f', emu, '-s', join(dir, 'state'), '-n', '-p']);
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const sim: IpmiSim = { child, address, port, stop: () => stopChild(child, 2000) };
  // Ready = it answers a Presence Ping.
  const probe = presencePingProbe();
  const s = dgram.createSocket('udp4');
  let done = false;
  try {
    const ok = await new Promise<boolean>((resolve) => {
      const deadline = setTimeout(() => resolve(false), timeoutMs);
      s.on('message', (m) => {
        if (probe.answerTag(new Uint8Array(m)) === 7) {
          clearTimeout(deadline);
          resolve(true);
        }
      });
      child.once('exit', () => resolve(false));
      const tick = () => {
        if (done || child.exitCode !== null) return;
        s.send(probe.request(7), port, address);
        setTimeout(tick, 50).unref();
      };
      tick();
    });
    if (!ok) {
      await sim.stop();
      throw new Error(`ipmi_sim did not answer a Presence Ping on ${address}:${port} within ${timeoutMs} ms: ${err.trim().slice(-500)}`);
    }
  } finally {
    done = true;
    s.close();
  }
  return sim;
}
