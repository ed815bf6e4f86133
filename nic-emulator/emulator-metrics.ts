/**
 * The emulator's Prometheus `/metrics` (control-server.ts; every series in docs/METRICS.md). Everything is summed over
 * the fleet at scrape time — each NIC adds itself (NicMachine.addTotals, firmware/nic-totals.ts) and the sockets'
 * counts are one fleet-wide object (fleet-tally.ts) — so there is no per-NIC series, no label value outside a small
 * fixed set, and nothing on the datagram path but the integers the firmware and the shell already bump. A scrape of
 * 100,000 NICs gives the same series as one of 4.
 */
import type { Fleet } from './fleet.js';
import { HOST_STATES } from '../firmware/host-state.js';
import { newNicTotals } from '../firmware/nic-totals.js';
import { ScrapeGauge, TotalCounter, byLabel, newRegistry, type Registry } from '../lib/prometheus.js';

const RUN_STATES = ['starting', 'running', 'unpowered', 'failed', 'stopped'];
const EEPROM_REGIONS = ['header', 'config', 'sa', 'directory', 'checkpoint', 'exec', 'ipmiUsers'];
const PORTS = ['clear', 'secure', 'ike'] as const;
const COMMANDS = ['reset', 'power-up', 'power-down', 'power-cycle'];
const VIAS = ['clear', 'secure', 'ipmi'];

export class EmulatorMetrics {
  readonly registry: Registry = newRegistry();
  private readonly r = this.registry;
  private readonly info = new ScrapeGauge(this.r, 'lifeline_emulator_info', 'The emulator process: its NIC socket layer (udp_io: batch or dgram); always 1', ['udp_io']);
  private readonly nics = new ScrapeGauge(this.r, 'lifeline_nics', 'NICs of the fleet by run state', ['state']);
  private readonly hosts = new ScrapeGauge(this.r, 'lifeline_nic_hosts', 'Hosts by power/OS state (off, pre-boot, up, hung, suspend)', ['state']);
  private readonly linkDown = new ScrapeGauge(this.r, 'lifeline_nics_link_down', 'NICs whose cable is pulled');
  private readonly withSa = new ScrapeGauge(this.r, 'lifeline_nics_with_sa', 'NICs holding an active SA');
  private readonly received = new TotalCounter(this.r, 'lifeline_nic_datagrams_received_total', 'Datagrams the NICs\' sockets received, by port (clear 623, secure 664, ike: the host agent\'s)', ['port']);
  private readonly sent = new TotalCounter(this.r, 'lifeline_nic_datagrams_sent_total', 'Datagrams the NICs sent (answers, ACKs, IKE, heartbeat probes), by port', ['port']);
  private readonly accepted = new TotalCounter(this.r, 'lifeline_nic_datagrams_accepted_total', 'RMCP datagrams the firmware accepted, by port (secure: authenticated and in the window)', ['port']);
  private readonly dropped = new TotalCounter(this.r, 'lifeline_nic_datagrams_dropped_total', 'Datagrams on 623/664 the NICs dropped, by reason (an error code in lower case: replay, icv, spi, ..., link_down, nic_unpowered)', ['reason']);
  private readonly acksSent = new TotalCounter(this.r, 'lifeline_nic_rmcp_acks_sent_total', 'RMCP ACKs the NICs sent');
  private readonly acksReceived = new TotalCounter(this.r, 'lifeline_nic_rmcp_acks_received_total', 'RMCP ACKs the NICs received (a station acknowledging an answer), by port', ['port']);
  private readonly refusedClear = new TotalCounter(this.r, 'lifeline_nic_clear_commands_refused_total', 'Power commands refused in the clear (clear management off or not allowed)');
  private readonly duplicates = new TotalCounter(this.r, 'lifeline_nic_duplicates_answered_total', 'Retransmitted secure commands answered from the response cache, not run again');
  private readonly executed = new TotalCounter(this.r, 'lifeline_nic_commands_executed_total', 'Host commands the NICs executed, by command and path (clear, secure, ipmi)', ['command', 'via']);
  private readonly pageWrites = new TotalCounter(this.r, 'lifeline_nic_eeprom_page_writes_total', 'EEPROM page writes by region (the EEPROMs\' lifetime counts: they survive restarts)', ['region']);
  private readonly agents = new ScrapeGauge(this.r, 'lifeline_nic_host_agents', 'Host agents (IKE responders) running: NIC enrolled, host OS up, cable in');
  private readonly cookieMode = new ScrapeGauge(this.r, 'lifeline_nic_host_agents_cookie_mode', 'Host agents demanding IKE cookies now (RFC 7296 §2.6: too many half-open IKE SAs)');
  private readonly halfOpen = new ScrapeGauge(this.r, 'lifeline_nic_ike_half_open_sas', 'Half-open IKE SAs the host agents hold');
  private readonly ikeMessages = new TotalCounter(this.r, 'lifeline_nic_ike_messages_total', 'IKE messages the host agents handled, by direction (received, sent)', ['direction']);
  private readonly ikeDh = new TotalCounter(this.r, 'lifeline_nic_ike_dh_computations_total', 'Diffie-Hellman computations of the host agents (one per IKE_SA_INIT answered with KEr)');
  private readonly ikeCookies = new TotalCounter(this.r, 'lifeline_nic_ike_cookies_sent_total', 'N(COOKIE) answers the host agents sent (RFC 7296 §2.6)');
  private readonly ikeHalfOpenGone = new TotalCounter(this.r, 'lifeline_nic_ike_half_open_ended_total', 'Half-open IKE SAs ended without completing, by how (expired, evicted)', ['how']);
  private readonly ikeRekeys = new TotalCounter(this.r, 'lifeline_nic_ike_sa_rekeys_total', 'IKE SA rekeys the host agents completed');
  private readonly ikeNoAnchor = new TotalCounter(this.r, 'lifeline_nic_ike_no_trust_anchor_total', 'IKE datagrams to a host agent of a NIC without a trust anchor');
  private readonly ikeEeprom = new TotalCounter(this.r, 'lifeline_nic_ike_eeprom_failures_total', 'EEPROM writes of the host agents that failed (the NIC rebooted)');
  private readonly ikeDropped = new TotalCounter(this.r, 'lifeline_nic_ike_dropped_total', 'IKE datagrams the host agents dropped, by reason', ['reason']);
  private readonly ipmiEnabled = new ScrapeGauge(this.r, 'lifeline_nic_ipmi_lanplus_enabled', 'NICs whose EEPROM turns IPMI lanplus on');
  private readonly ipmiSessions = new ScrapeGauge(this.r, 'lifeline_nic_ipmi_sessions', 'Active IPMI lanplus sessions');
  private readonly ipmiSessionEvents = new TotalCounter(this.r, 'lifeline_nic_ipmi_session_events_total', 'IPMI lanplus session events: opened, activated, closed, idle_closed, half_open_expired, half_open_evicted', ['event']);
  private readonly ipmiMessages = new TotalCounter(this.r, 'lifeline_nic_ipmi_messages_total', 'IPMI lanplus datagrams, by direction (received, sent)', ['direction']);
  private readonly ipmiCommands = new TotalCounter(this.r, 'lifeline_nic_ipmi_commands_total', 'In-session IPMI requests answered');
  private readonly ipmiRefused = new TotalCounter(this.r, 'lifeline_nic_ipmi_refused_total', 'IPMI lanplus requests refused, by reason', ['reason']);
  private readonly ipmiDropped = new TotalCounter(this.r, 'lifeline_nic_ipmi_dropped_total', 'IPMI lanplus datagrams dropped, by reason', ['reason']);
  private readonly sharedDropped = new TotalCounter(this.r, 'lifeline_emulator_shared_socket_dropped_total', 'Datagrams the fleet\'s shared sockets dropped, by reason (no_nic: to an address no NIC has; port_closed: to a NIC port not open, e.g. 664 before an SA)', ['reason']);
  private readonly bpHits = new TotalCounter(this.r, 'lifeline_emulator_busy_poll_events_total', 'Busy polling: datagrams that arrived while polling (hit), after it gave up (miss), and back-offs for another process', ['event']);
  private readonly bpWindow = new ScrapeGauge(this.r, 'lifeline_emulator_busy_poll_window_seconds', 'Busy polling: the adaptive window now (0: off)');
  private readonly bpMax = new ScrapeGauge(this.r, 'lifeline_emulator_busy_poll_max_seconds', 'Busy polling: the longest window (--busy-poll-us; 0: off)');

  constructor(private readonly fleet: Fleet) {}

  /** Sum the fleet into every series (called before each scrape renders). */
  update(now = Date.now()): void {
    const t = newNicTotals();
    for (const n of this.fleet.nics) n.machine.addTotals(t, now);
    const tally = this.fleet.tally;
    this.info.set([[{ udp_io: this.fleet.udpIo }, 1]]);
    this.nics.set(byLabel('state', t.runState, RUN_STATES));
    this.hosts.set(byLabel('state', t.host, HOST_STATES));
    this.linkDown.setValue(t.linkDown);
    this.withSa.setValue(t.withSa);
    this.received.set(PORTS.map((p) => [{ port: p }, tally.received[p]]));
    this.sent.set(PORTS.map((p) => [{ port: p }, tally.sent[p]]));
    const f = t.firmware;
    this.accepted.set([[{ port: 'clear' }, f.acceptedClear], [{ port: 'secure' }, f.acceptedSecure]]);
    this.dropped.set(byLabel('reason', f.dropped));
    this.acksSent.setValue(f.acksSent);
    this.acksReceived.set([[{ port: 'clear' }, f.acksReceivedClear], [{ port: 'secure' }, f.acksReceivedSecure]]);
    this.refusedClear.setValue(f.refusedClear);
    this.duplicates.setValue(f.duplicatesAnswered);
    const executed: [Partial<Record<'command' | 'via', string>>, number][] = [];
    for (const command of COMMANDS) for (const via of VIAS) executed.push([{ command, via }, tally.executed.get(`${command}|${via}`) ?? 0]);
    this.executed.set(executed);
    this.pageWrites.set(byLabel('region', t.eepromPageWrites, EEPROM_REGIONS));
    const k = t.ike;
    this.agents.setValue(k.running);
    this.cookieMode.setValue(k.cookieMode);
    this.halfOpen.setValue(k.halfOpen);
    this.ikeMessages.set([[{ direction: 'received' }, k.received], [{ direction: 'sent' }, k.sent]]);
    this.ikeDh.setValue(k.dhComputations);
    this.ikeCookies.setValue(k.cookiesSent);
    this.ikeHalfOpenGone.set([[{ how: 'expired' }, k.halfOpenExpired], [{ how: 'evicted' }, k.halfOpenEvicted]]);
    this.ikeRekeys.setValue(k.ikeRekeys);
    this.ikeNoAnchor.setValue(k.noTrustAnchor);
    this.ikeEeprom.setValue(k.eepromFailures);
    this.ikeDropped.set(byLabel('reason', k.dropped));
    const i = t.ipmi;
    this.ipmiEnabled.setValue(i.enabled);
    this.ipmiSessions.setValue(i.activeSessions);
    this.ipmiSessionEvents.set([
      [{ event: 'opened' }, i.opened], [{ event: 'activated' }, i.activated], [{ event: 'closed' }, i.closed],
      [{ event: 'idle_closed' }, i.idleClosed], [{ event: 'half_open_expired' }, i.halfOpenExpired], [{ event: 'half_open_evicted' }, i.halfOpenEvicted],
    ]);
    this.ipmiMessages.set([[{ direction: 'received' }, i.received], [{ direction: 'sent' }, i.sent]]);
    this.ipmiCommands.setValue(i.commands);
    this.ipmiRefused.set(byLabel('reason', i.refused));
    this.ipmiDropped.set(byLabel('reason', i.dropped));
    const sd = this.fleet.sharedDrops;
    this.sharedDropped.set([[{ reason: 'no_nic' }, sd?.noNic ?? 0], [{ reason: 'port_closed' }, sd?.portClosed ?? 0]]);
    const bp = this.fleet.busyPoll?.stats();
    this.bpHits.set([[{ event: 'hit' }, bp?.hits ?? 0], [{ event: 'miss' }, bp?.misses ?? 0], [{ event: 'backoff' }, bp?.backoffs ?? 0]]);
    this.bpWindow.setValue((bp?.windowUs ?? 0) / 1e6);
    this.bpMax.setValue((bp?.maxUs ?? 0) / 1e6);
  }
}
