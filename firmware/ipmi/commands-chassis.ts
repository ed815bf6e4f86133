/**
 * Chassis netFn (00h) commands (IPMI v2.0 chapter 28; cat. §7.3), driving the same emulated host as the ASF
 * commands do (DESIGN §9). The responder never changes the host itself: Chassis Control returns a
 * host-command effect, the caller applies it (firmware/host-state.ts transition()), and the next Get Chassis
 * Status sees the new state through IpmiHostView.
 *
 *   Chassis Control 00h power down       -> power-down
 *                   01h power up         -> power-up
 *                   02h power cycle      -> power-cycle (D5h while the host is off, as §28.3 recommends)
 *                   03h hard reset       -> reset
 *                   05h soft shutdown    -> power-down: the emulated host has no ACPI OS to ask, so an
 *                                           orderly shutdown and a power-down end in the same state (off)
 *                   04h pulse diagnostic interrupt: not emulated (CCh)
 */
import type { AsfCommandEvent } from '../host-state.js';
import { CC, NETFN, PRIV } from './ipmi-types.js';
import { commandKey, type CommandContext, type CommandResult, type CommandSpec } from './command-context.js';
import type { IpmiRequest } from './ipmi-message.js';
import { hex32 } from './_le.js';

/**
 * Get Chassis Status (§28.2). Byte 1: bit 0 power is on (every host state but 'off'), bits 6:5 restore policy
 * 00b "stays off" (after a power loss the emulated host stays off until powered up). Byte 2: bit 4 the last
 * power-on came from an IPMI command. Byte 3: no intrusion, lockout, faults or identify support.
 */
function getChassisStatus(_req: IpmiRequest, ctx: CommandContext): CommandResult {
  const on = ctx.host.state !== 'off';
  return { cc: CC.ok, data: Uint8Array.of(on ? 0x01 : 0x00, ctx.bmc.powerOnViaIpmi ? 0x10 : 0x00, 0x00) };
}

const CONTROL: Readonly<Record<number, { command: AsfCommandEvent; label: string }>> = {
  0x00: { command: 'power-down', label: 'power down' },
  0x01: { command: 'power-up', label: 'power up' },
  0x02: { command: 'power-cycle', label: 'power cycle' },
  0x03: { command: 'reset', label: 'hard reset' },
  0x05: { command: 'power-down', label: 'soft shutdown' },
};

/** Chassis Control (§28.3). */
function chassisControl(req: IpmiRequest, ctx: CommandContext): CommandResult {
  const s = ctx.session!;
  if (req.data.length !== 1) return { cc: CC.requestLengthInvalid };
  const c = CONTROL[req.data[0] & 0x0f];
  if (!c || req.data[0] & 0xf0) return { cc: CC.invalidDataField };
  if (c.command === 'power-cycle' && ctx.host.state === 'off') return { cc: CC.notSupportedInPresentState };
  const ipmi = `chassis control: ${c.label}`;
  ctx.effects.push({ kind: 'host-command', command: c.command, ipmi, user: s.user.user.name, sessionId: s.sidC });
  if (c.command === 'power-up' || c.command === 'power-cycle') ctx.bmc.powerOnViaIpmi = true;
  // Every host command is logged, as every clear ASF command is (nic-firmware.ts); a flood is bounded by the
  // session limit and by authentication.
  ctx.effects.push({
    kind: 'log', level: 'info', msg: 'IPMI host command',
    fields: { ipmi, command: c.command, user: s.user.user.name, sessionId: hex32(s.sidC), from: `${s.peer.address}:${s.peer.port}`, hostState: ctx.host.state },
  });
  return { cc: CC.ok };
}

function setSystemBootOptions(req: IpmiRequest, ctx: CommandContext): CommandResult {
  return { cc: ctx.bmc.boot.set(req.data) };
}

function getSystemBootOptions(req: IpmiRequest, ctx: CommandContext): CommandResult {
  return ctx.bmc.boot.get(req.data);
}

const chassis = (cmd: number, spec: CommandSpec): [number, CommandSpec] => [commandKey(NETFN.chassis, cmd), spec];

export const CHASSIS_COMMANDS: ReadonlyMap<number, CommandSpec> = new Map([
  chassis(0x01, { name: 'get chassis status', privilege: PRIV.user, run: getChassisStatus }),
  chassis(0x02, { name: 'chassis control', privilege: PRIV.operator, run: chassisControl }),
  chassis(0x08, { name: 'set system boot options', privilege: PRIV.operator, run: setSystemBootOptions }),
  chassis(0x09, { name: 'get system boot options', privilege: PRIV.operator, run: getSystemBootOptions }),
]);
