/**
 * Storage netFn (0Ah) commands (IPMI v2.0 chapter 31). Only Get SEL Info: this NIC keeps no System Event Log
 * (its events go to the owning station as alerts, DESIGN §8), so it reports an empty SEL with no room.
 */
import { CC, NETFN, PRIV } from './ipmi-types.js';
import { commandKey, type CommandResult, type CommandSpec } from './command-context.js';

/**
 * Get SEL Info (§31.2): SEL version 51h (IPMI 1.5/2.0), 0 entries, 0 bytes free, most recent addition and
 * erase "never" (FFFFFFFFh), no optional operations (no overflow, delete, partial add, reserve, allocation info).
 */
function getSelInfo(): CommandResult {
  return { cc: CC.ok, data: Uint8Array.of(0x51, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00) };
}

export const STORAGE_COMMANDS: ReadonlyMap<number, CommandSpec> = new Map([
  [commandKey(NETFN.storage, 0x40), { name: 'get sel info', privilege: PRIV.user, run: getSelInfo }],
]);
