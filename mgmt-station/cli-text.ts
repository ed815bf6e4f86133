/**
 * mgmt-station's words: what a NIC's answer, an exchange or a manual SA reads like (the same whether the verb ran
 * here or in the daemon), and the options both paths read (the PSK file, a manual SA's). No store, protocol or
 * daemon module is loaded from here: a verb forwarded to the daemon needs only this (mgmt-station/cli.ts).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { UsageError } from '../common/errors.js';
import { intOption } from '../lib/cli.js';
import type { ControlClient } from '../lib/control-client.js';
import type { KnownNic } from '../lib/nic-targets.js';
import type { EspTransform, SaPair, SecurityPolicy } from '../wire/sa.js';
import type { CommandKind, ReadKind, RequestResult } from './core/session.js';
import { asfTypeName, ASF_TYPE_CODE } from '../wire/asf.js';

export const READS: Record<string, ReadKind> = { ping: 'presence-ping', state: 'system-state-request', capabilities: 'capabilities-request' };
export const COMMANDS: readonly CommandKind[] = ['reset', 'power-up', 'power-down', 'power-cycle'];
export const isCommand = (verb: string): boolean => (COMMANDS as readonly string[]).includes(verb);

const SYSTEM_STATE_NAMES: Record<number, string> = {
  0: 'S0 working', 1: 'S1 sleeping', 2: 'S2 sleeping', 3: 'S3 sleeping (suspend to RAM)', 4: 'S4 suspend to disk',
  5: 'S5 soft-off', 6: 'S4/S5 soft-off', 7: 'G3 mechanical off', 8: 'sleeping S1-S3', 9: 'G1 sleeping',
  10: 'S5 override', 11: 'legacy on', 12: 'legacy off', 14: 'unknown',
};

/** A read's or command's result as --json prints it (round-trip time to the µs). */
export function requestJson(r: RequestResult): RequestResult {
  return { ...r, rttMs: Math.round(r.rttMs * 1000) / 1000 };
}

/** An enrolment's or refresh's result as --json prints it. */
export function exchangeJson<T extends { ms: number }>(r: T): T {
  return { ...r, ms: Math.round(r.ms * 1000) / 1000 };
}

/** The emulator's NICs (for enroll and sa manual on a fleet: NICs the store may not know yet). */
export async function emulatorNics(emu: ControlClient): Promise<KnownNic[]> {
  return (await emu.get<{ id: string; address: string; ports?: { clear: number; secure: number; ike: number } }[]>('/v1/nics')).map((n) => ({
    id: n.id, address: n.address, ports: n.ports ? [n.ports.clear, n.ports.secure, n.ports.ike] : [],
  }));
}

export function describe(r: RequestResult): string {
  const ms = r.rttMs.toFixed(2);
  const m = r.response;
  const base = `${r.nic}: SA ${r.generation}, ${ms} ms${r.attempts > 1 ? `, ${r.attempts} attempts` : ''}`;
  switch (m.type) {
    case 'presence-pong':
      return `pong from ${base}: entities 0x${m.supportedEntities.toString(16)} interactions 0x${m.supportedInteractions.toString(16)}`;
    case 'system-state-response':
      return `${r.nic}: system state ${m.systemState} (${SYSTEM_STATE_NAMES[m.systemState] ?? 'reserved'}), watchdog ${m.watchdogExpired ? 'expired' : 'ok'} (${base})`;
    case 'capabilities-response':
      return `${r.nic}: capabilities special 0x${m.specialCommands.toString(16)} system 0x${m.systemCapabilities.toString(16).padStart(2, '0')} firmware 0x${m.firmwareCapabilities.toString(16)} (${base})`;
    case 'rmcp-ack':
      return `${r.request} acknowledged by ${base} (log entry ${r.command?.index}, rmcp seq ${r.command?.rmcpSeq}, tag ${r.command?.tag})`;
    default:
      return `${r.nic}: ${asfTypeName(ASF_TYPE_CODE[m.type])} (${base})`;
  }
}

/** One line for an enrolment or a refresh (an ExchangeResult, or its JSON from the daemon). */
export function describeExchange(r: { nic: string; kind: string; generation: number; exchange: string; ms: number }): string {
  return `${r.nic}: ${r.kind === 'enroll' ? 'enrolled' : 'refreshed'}: SA generation ${r.generation} committed (${r.exchange} + SA_READY/SA_ACK/SA_CONFIRM, ${Number(r.ms).toFixed(1)} ms)`;
}

export function describeManualSa(r: { nic: string; generation: number; transform: string; policy: string; toNicSpi: number; fromNicSpi: number }): string {
  return `${r.nic}: manual SA generation ${r.generation} installed (${r.transform}, ${r.policy}, SPI to NIC 0x${r.toNicSpi.toString(16)}, from NIC 0x${r.fromNicSpi.toString(16)})`;
}

export function readPsk(path: string): Uint8Array {
  if (!path) throw new UsageError('E_USAGE', 'enroll needs --psk-file FILE (64 hex digits; make one with: head -c 32 /dev/urandom | xxd -p -c 64 > psk.hex)');
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new UsageError('E_USAGE', `cannot read --psk-file ${path}: ${(e as Error).message}`);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new UsageError('E_USAGE', `--psk-file ${path} must hold 64 hex digits (32 bytes); make one with: head -c 32 /dev/urandom | xxd -p -c 64`);
  return new Uint8Array(Buffer.from(text, 'hex'));
}

/** The manual SA that `sa manual` options ask for (--policy, --transform, --key-bits); E_USAGE for a bad one. */
export function manualSaOf(values: Record<string, string | boolean | undefined>): SaPair {
  const keyBits = intOption(values['key-bits'] as string | undefined, 128, 'key-bits', 1);
  return manualSa((values.policy ?? 'esp') as SecurityPolicy, (values.transform ?? 'aes-gcm-16') as EspTransform, keyBits);
}

function manualSa(policy: SecurityPolicy, transform: EspTransform, keyBits: number): SaPair {
  if (policy !== 'esp' && policy !== 'esp+ah') throw new UsageError('E_USAGE', `--policy must be esp or esp+ah`);
  if (transform !== 'aes-gcm-16' && transform !== 'chacha20-poly1305') throw new UsageError('E_USAGE', `--transform must be aes-gcm-16 or chacha20-poly1305`);
  if (transform === 'aes-gcm-16' && keyBits !== 128 && keyBits !== 256) throw new UsageError('E_USAGE', `--key-bits must be 128 or 256`);
  const keyLen = transform === 'aes-gcm-16' ? keyBits / 8 + 4 : 36;
  const spi = () => randomInt(0x1000, 0xfffffffe);
  const dir = () => ({
    spi: spi(),
    encKey: new Uint8Array(randomBytes(keyLen)),
    ahSpi: policy === 'esp+ah' ? spi() : 0,
    ahKey: policy === 'esp+ah' ? new Uint8Array(randomBytes(32)) : new Uint8Array(0),
  });
  return { generation: 0, transform, esn: false, policy, origin: 'manual', toNic: dir(), fromNic: dir() };
}
