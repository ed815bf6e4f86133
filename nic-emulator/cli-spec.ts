/**
 * nic-emulator's command line as data (lib/cli-args.ts): every option, which verbs take it, each verb's usage,
 * help and example. nic-emulator/cli.ts runs the verbs; docs/CLI.md is the reference.
 */
import type { ToolSpec } from '../lib/cli-args.js';

export const TARGET_HELP =
  'TARGET: a NIC by id (nic-1) or address (127.0.1.1, or 127.0.0.1:PORT in port-per-NIC mode), a list (nic-1,nic-3), ' +
  "a pattern (nic-*) or 'all'; more than one NIC prints a summary line (JSON with --json).";

const HOST_EVENTS_HELP = 'hang suspend wake crash power-loss power-restore cable-pull cable-plug reset power-up power-down power-cycle';

export const EMULATOR_CLI: ToolSpec = {
  prog: 'nic-emulator',
  tagline: 'Hosts a fleet of emulated ASF management NICs and their hosts; the other verbs drive a running one.',
  options: {
    nics: { type: 'string', arg: 'N', help: 'number of NICs (default 4)' },
    'first-address': { type: 'string', arg: 'A', help: 'first NIC address, one address per NIC (default 127.0.1.1; ports 623, 664, 500); needs root or cap_net_bind_service; outside 127/8 the addresses must be on an interface (ip addr add)' },
    'id-prefix': { type: 'string', arg: 'P', help: 'NIC ids P-nic-1, P-nic-2, ... (default nic-1, ...): one prefix per emulator whose NICs one station manages' },
    'port-base': { type: 'string', arg: 'P', help: 'port-per-NIC instead: NIC i on P+3(i-1) clear, +1 secure, +2 IKE, all on one address (default then 127.0.0.1)' },
    'data-dir': { type: 'string', arg: 'D', help: 'one EEPROM file per NIC under D (default var/nics)' },
    'boot-delay': { type: 'string', arg: 'MS', help: 'pre-boot -> OS up (default 2000)' },
    'host-state': { type: 'string', arg: 'S', help: 'every host\'s state at start: off, pre-boot, up, hung, suspend (default up)' },
    policy: { type: 'string', arg: 'esp|esp+ah', help: 'security policy of new EEPROM images (default esp)' },
    'clear-management': { type: 'string', arg: 'CMDS', help: 'clear commands new images allow on 623, comma-separated: reset, power-up, power-down, power-cycle (default none)' },
    'checkpoint-block': { type: 'string', arg: 'K', help: 'sequence numbers reserved per EEPROM checkpoint, 4096..65536 (default 16384)' },
    'ipmi-user': { type: 'string', multiple: true, arg: 'NAME:PASSWORD[:PRIV]', help: 'an IPMI 2.0 lanplus user (repeat, up to 8; PRIV user, operator or administrator, default administrator); docs/IPMI.md' },
    off: { type: 'boolean', help: 'turn lanplus off and remove the IPMI users' },
    'busy-poll-us': { type: 'string', arg: 'US', help: 'after a datagram, poll the sockets up to US µs instead of sleeping (default 200; 0 = never)' },
    'udp-io': { type: 'string', arg: 'batch|dgram', help: 'batch = recvmmsg/sendmmsg (lib/native; default where built), dgram = node:dgram' },
    'shared-sockets': { type: 'string', arg: 'auto|on|off', help: 'one socket per port (0.0.0.0:623/664/500) for all NICs, by destination address: no descriptor per NIC; auto = fleets of 1000+ NICs, address-per-NIC, batch (default auto)' },
    'lazy-boot': { type: 'string', arg: 'auto|on|off', help: 'ready before the NICs read their EEPROMs: each boots on its first datagram or control call, the rest in the background; needs shared sockets; auto = fleets of 1000+ NICs (default auto)' },
    'log-format': { type: 'string', arg: 'text|json', help: 'log lines on stderr (default text; json: one object a line)' },
    'log-level': { type: 'string', arg: 'L', help: 'least important line logged: debug, info, warn, error (default info)' },
    control: { type: 'string', arg: 'HOST:PORT', help: 'the control API (default 127.0.0.1:8623; loopback only)' },
    json: { type: 'boolean', help: 'machine-readable output: one JSON document' },
  },
  common: ['control', 'json'],
  verbs: {
    start: {
      usage: 'start [options]',
      summary: 'host a fleet of NICs (foreground)',
      about: "Start the NICs and the control API and stay in the foreground; Ctrl-C, SIGTERM or 'nic-emulator stop' end it. " +
        'Every NIC resumes from its EEPROM file. Prints one ready line (JSON with --json).',
      options: ['nics', 'id-prefix', 'first-address', 'port-base', 'data-dir', 'boot-delay', 'host-state', 'policy', 'clear-management', 'checkpoint-block', 'ipmi-user', 'busy-poll-us', 'udp-io', 'shared-sockets', 'lazy-boot', 'log-format', 'log-level'],
      examples: ['start --nics 8 --port-base 16230 --log-format json', 'start --nics 8 --id-prefix lab-a --first-address 10.77.1.1'],
    },
    status: {
      usage: 'status [TARGET] [options]',
      summary: 'host states, SAs and counters of the NICs',
      about: 'Every NIC (or the TARGET ones): address, run state, host state, link, SA slots (active, previous, pending ' +
        `generations), packets accepted, dropped and refused, lanplus, EEPROM writes. ${TARGET_HELP}`,
      options: [],
      examples: ['status nic-1 --json'],
    },
    host: {
      usage: 'host TARGET EVENT [options]',
      summary: 'drive a host: hang, crash, power-loss, ...',
      about: `Apply EVENT to the host (or the NIC: power-restore, cable-pull, cable-plug). EVENT: ${HOST_EVENTS_HELP}. ` +
        `An event the host's state does not allow is E_ILLEGAL_TRANSITION (exit 1) and changes nothing. ${TARGET_HELP}`,
      options: [],
      examples: ['host nic-1 hang', 'host all power-cycle'],
    },
    'exec-log': {
      usage: 'exec-log TARGET [options]',
      summary: 'commands the NIC executed, oldest first',
      about: `The commands the NIC executed (clear, secure and IPMI), oldest first, with the host state before and after. ${TARGET_HELP}`,
      options: [],
      examples: ['exec-log nic-1'],
    },
    fault: {
      usage: 'fault TARGET tear-next-write BYTE [options]',
      summary: 'tear the NIC\'s next EEPROM write at BYTE',
      about: 'The NIC loses power once BYTE more bytes are written to its EEPROM: the write crossing that point is ' +
        `torn, writes that fit before it complete. ${TARGET_HELP}`,
      options: [],
      examples: ['fault nic-1 tear-next-write 100'],
    },
    policy: {
      usage: 'policy TARGET FILE [options]',
      summary: 'write a station-cluster policy into the EEPROM',
      about: 'Write a station-cluster policy (INI: [GENERAL] Heartbeat=..., [CLUSTER] Cluster1 = addr:port ...) into ' +
        `the NIC's EEPROM; heartbeats start per it. A FILE over 1024 bytes is E_POLICY. ${TARGET_HELP}`,
      options: [],
      examples: ['policy nic-1 policy.ini'],
    },
    'ipmi-users': {
      usage: 'ipmi-users TARGET (--ipmi-user NAME:PASSWORD[:PRIV]... | --off) [options]',
      summary: 'IPMI lanplus users, or lanplus off',
      about: "Write the NIC's IPMI users into its EEPROM and turn IPMI 2.0 lanplus on (UDP 623 beside ASF), or turn it " +
        `off with --off; every IPMI session ends. docs/IPMI.md. ${TARGET_HELP}`,
      options: ['ipmi-user', 'off'],
      examples: ['ipmi-users nic-1 --ipmi-user admin:S3cret-pw'],
    },
    stop: {
      usage: 'stop [options]',
      summary: 'stop a running emulator',
      about: "Ask the emulator at --control to stop cleanly. With none running there, it says so and exits 0: " +
        'the emulator is stopped either way.',
      options: [],
      examples: ['stop'],
    },
  },
  groups: [
    ['Run', ['start', 'stop']],
    ['Drive and inspect a running emulator', ['status', 'host', 'exec-log', 'fault', 'policy', 'ipmi-users']],
  ],
  footer: [
    TARGET_HELP,
    'Exit: 0 ok, 1 failed (refused, illegal transition), 2 usage error, 3 unreachable, 4 internal error (docs/CLI.md).',
  ],
};
