/**
 * A fleet's NICs summed, for the emulator's Prometheus `/metrics` (nic-emulator/emulator-metrics.ts, docs/METRICS.md).
 * Each machine adds itself with `NicMachine.addTotals(t, now)` at scrape time; nothing here is per NIC, so a scrape
 * of 100,000 NICs gives as many series as a scrape of one (the label values come from small fixed sets: run and
 * host states, drop reasons that are error codes, EEPROM regions).
 *
 * Counters are totals since the emulator process started the NIC: the machine carries what the firmware and the
 * lanplus responder of an earlier boot counted (`FirmwareTotals`, `IpmiTotals`), so a sum over the fleet never goes
 * down while NICs lose power and reboot (Prometheus would read a decrease as a counter reset). EEPROM page writes are
 * the EEPROM's own lifetime counts (they survive restarts, eeprom-image.ts), kept while a NIC is unpowered.
 */
import type { NicCounters } from './nic-firmware.js';
import type { IpmiCounters } from './ipmi/ipmi-types.js';

/** What the firmware counts (nic-firmware.ts NicCounters), flattened; `dropped` by reason. */
export interface FirmwareTotals {
  acceptedClear: number;
  acceptedSecure: number;
  dropped: Record<string, number>;
  refusedClear: number;
  executed: number;
  duplicatesAnswered: number;
  acksSent: number;
  acksReceivedClear: number;
  acksReceivedSecure: number;
}

/** The host agents' IKE responders: counters over the agents' restarts, plus gauges of the agents now running. */
export interface IkeTotals {
  /** Host agents running (the NIC enrolled, its host OS up), and those demanding cookies (RFC 7296 §2.6) now. */
  running: number;
  cookieMode: number;
  halfOpen: number;
  received: number;
  sent: number;
  noTrustAnchor: number;
  eepromFailures: number;
  ikeRekeys: number;
  dhComputations: number;
  cookiesSent: number;
  halfOpenExpired: number;
  halfOpenEvicted: number;
  dropped: Record<string, number>;
}

/** lanplus (firmware/ipmi/): counters over the responders of every boot, plus the sessions active now. */
export interface IpmiTotals {
  /** NICs whose EEPROM turns lanplus on, and active sessions now. */
  enabled: number;
  activeSessions: number;
  received: number;
  sent: number;
  opened: number;
  activated: number;
  closed: number;
  idleClosed: number;
  halfOpenExpired: number;
  halfOpenEvicted: number;
  commands: number;
  hostCommands: number;
  refused: Record<string, number>;
  dropped: Record<string, number>;
}

export interface NicTotals {
  /** NICs by run state (starting, running, unpowered, failed, stopped) and by host state (off, pre-boot, up, ...). */
  runState: Record<string, number>;
  host: Record<string, number>;
  /** NICs whose cable is pulled; NICs holding an active SA. */
  linkDown: number;
  withSa: number;
  firmware: FirmwareTotals;
  /** EEPROM page writes by region (header, config, sa, directory, checkpoint, exec, ipmiUsers). */
  eepromPageWrites: Record<string, number>;
  ike: IkeTotals;
  ipmi: IpmiTotals;
}

export function newFirmwareTotals(): FirmwareTotals {
  return { acceptedClear: 0, acceptedSecure: 0, dropped: {}, refusedClear: 0, executed: 0, duplicatesAnswered: 0, acksSent: 0, acksReceivedClear: 0, acksReceivedSecure: 0 };
}

export function newIkeTotals(): IkeTotals {
  return {
    running: 0, cookieMode: 0, halfOpen: 0, received: 0, sent: 0, noTrustAnchor: 0, eepromFailures: 0, ikeRekeys: 0,
    dhComputations: 0, cookiesSent: 0, halfOpenExpired: 0, halfOpenEvicted: 0, dropped: {},
  };
}

export function newIpmiTotals(): IpmiTotals {
  return {
    enabled: 0, activeSessions: 0, received: 0, sent: 0, opened: 0, activated: 0, closed: 0, idleClosed: 0, halfOpenExpired: 0,
    halfOpenEvicted: 0, commands: 0, hostCommands: 0, refused: {}, dropped: {},
  };
}

export function newNicTotals(): NicTotals {
  return { runState: {}, host: {}, linkDown: 0, withSa: 0, firmware: newFirmwareTotals(), eepromPageWrites: {}, ike: newIkeTotals(), ipmi: newIpmiTotals() };
}

/** into[k] += n for every entry of `from` (a count by reason or region). */
export function addCounts(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const k in from) into[k] = (into[k] ?? 0) + from[k];
}

export function addFirmwareCounters(into: FirmwareTotals, c: Readonly<NicCounters>): void {
  into.acceptedClear += c.accepted.clear;
  into.acceptedSecure += c.accepted.secure;
  addCounts(into.dropped, c.dropped);
  into.refusedClear += c.refusedClear;
  into.executed += c.executed;
  into.duplicatesAnswered += c.duplicatesAnswered;
  into.acksSent += c.acksSent;
  into.acksReceivedClear += c.acksReceived.clear;
  into.acksReceivedSecure += c.acksReceived.secure;
}

export function addFirmwareTotals(into: FirmwareTotals, t: Readonly<FirmwareTotals>): void {
  into.acceptedClear += t.acceptedClear;
  into.acceptedSecure += t.acceptedSecure;
  addCounts(into.dropped, t.dropped);
  into.refusedClear += t.refusedClear;
  into.executed += t.executed;
  into.duplicatesAnswered += t.duplicatesAnswered;
  into.acksSent += t.acksSent;
  into.acksReceivedClear += t.acksReceivedClear;
  into.acksReceivedSecure += t.acksReceivedSecure;
}

/** The counters of a lanplus responder (not its gauges: `enabled`, `activeSessions`). */
export function addIpmiCounters(into: IpmiTotals, c: Readonly<IpmiCounters>): void {
  into.received += c.received;
  into.sent += c.sent;
  into.opened += c.sessions.opened;
  into.activated += c.sessions.activated;
  into.closed += c.sessions.closed;
  into.idleClosed += c.sessions.idleClosed;
  into.halfOpenExpired += c.sessions.halfOpenExpired;
  into.halfOpenEvicted += c.sessions.halfOpenEvicted;
  into.commands += c.commands;
  into.hostCommands += c.hostCommands;
  addCounts(into.refused, c.refused);
  addCounts(into.dropped, c.dropped);
}

/** The counters of `t` (not its gauges) into `into`: what the responders of earlier boots counted. */
export function addIpmiTotals(into: IpmiTotals, t: Readonly<IpmiTotals>): void {
  into.received += t.received;
  into.sent += t.sent;
  into.opened += t.opened;
  into.activated += t.activated;
  into.closed += t.closed;
  into.idleClosed += t.idleClosed;
  into.halfOpenExpired += t.halfOpenExpired;
  into.halfOpenEvicted += t.halfOpenEvicted;
  into.commands += t.commands;
  into.hostCommands += t.hostCommands;
  addCounts(into.refused, t.refused);
  addCounts(into.dropped, t.dropped);
}
