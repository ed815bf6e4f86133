/**
 * mgmt-station's command line as data (lib/cli-args.ts): every option, which verbs take it, each verb's usage,
 * help and example. mgmt-station/cli.ts runs the verbs; docs/CLI.md is the reference.
 */
import type { ToolSpec, VerbSpec } from '../lib/cli-args.js';

/** The store and cluster key a station uses when --store (and $LIFELINE_STORE) or --cluster-key are not given. */
export const DEFAULT_STORE = 'sqlite:var/station.db';
export const DEFAULT_KEY_FILE = 'var/cluster.key';

export const TARGET_HELP =
  'TARGET: a NIC by id (nic-1) or address (127.0.1.1, or ADDRESS:PORT with port-per-NIC), a list (nic-1,nic-3), ' +
  "a pattern (nic-*) or 'all'; more than one NIC runs as a fleet: a summary line, JSON with --json, progress on a TTY.";

const read = (usage: string, summary: string, about: string, example: string): VerbSpec => ({
  usage: `${usage} TARGET [options]`, summary, about: `${about} ${TARGET_HELP}`, options: ['concurrency'], examples: [example],
});
const command = (verb: string, what: string): VerbSpec => ({
  usage: `${verb} TARGET [options]`,
  summary: `ASF ${what} over ESP (UDP 664)`,
  about: `Send the NIC an ASF ${what} under its SA. Done means the NIC acknowledged it and the outcome is stored; ` +
    `'mgmt-station log NIC' shows it. Goes through this station's daemon when one runs. ${TARGET_HELP}`,
  options: ['concurrency'],
  examples: [`${verb} nic-1`],
});

export const STATION_CLI: ToolSpec = {
  prog: 'mgmt-station',
  tagline: 'The management station: IKEv2 SAs with the NICs\' hosts, secured ASF commands.',
  options: {
    store: { type: 'string', arg: 'URL', help: `sqlite:FILE or postgres://... (default ${DEFAULT_STORE} or $LIFELINE_STORE)` },
    'cluster-key': { type: 'string', arg: 'FILE', help: `cluster key file, 0600 (default ${DEFAULT_KEY_FILE}) or $LIFELINE_CLUSTER_KEY` },
    id: { type: 'string', arg: 'NAME', help: "this station's id in the cluster (default station-1)" },
    'lease-ms': { type: 'string', arg: 'MS', help: 'NIC ownership lease (default 10000)' },
    timeout: { type: 'string', arg: 'MS', help: 'answer timeout (default 3000; key exchanges 5000+)' },
    'busy-poll-us': { type: 'string', arg: 'US', help: 'poll for an answer up to US µs (default 200; 0 = never)' },
    emulator: { type: 'string', arg: 'HOST:PORT', help: "the emulator's control API (default 127.0.0.1:8623)" },
    'no-daemon': { type: 'boolean', help: "run here even if this station's daemon runs" },
    json: { type: 'boolean', help: 'machine-readable output: one JSON document' },
    concurrency: { type: 'string', arg: 'N', help: 'a fleet TARGET runs N NICs at once (default 32, 1..1024)' },
    'psk-file': { type: 'string', arg: 'FILE', help: 'the pre-shared key: 64 hex digits (head -c 32 /dev/urandom | xxd -p -c 64)' },
    policy: { type: 'string', arg: 'esp|esp+ah', help: 'ESP alone or ESP inside AH (default esp)' },
    transform: { type: 'string', arg: 'T', help: 'aes-gcm-16 (default) or chacha20-poly1305' },
    'key-bits': { type: 'string', arg: '128|256', help: 'AES key size (default 128)' },
    wireshark: { type: 'string', arg: 'FILE', help: "write Wireshark's esp_sa UAT lines here (0600)" },
    ikev2: { type: 'string', arg: 'FILE', help: "write Wireshark's ikev2_decryption_table lines here (0600)" },
    'refresh-interval': { type: 'string', arg: 'S', help: 'refresh every SA this often (default 3600)' },
    'max-down-time': { type: 'string', arg: 'S', help: 'how long a host may stay down (default 86400)' },
    lifetime: { type: 'string', arg: 'S', help: 'SA lifetime (default: infinite); must cover refresh interval + max down time' },
    'ike-rekey-interval': { type: 'string', arg: 'S', help: 'rekey a held IKE SA at the first refresh after S (default 14400)' },
    'poll-interval': { type: 'string', arg: 'MS', help: 'poll every NIC this often (default 5000)' },
    control: { type: 'string', arg: 'HOST:PORT', help: "the daemon's API and fleet page; loopback only (default 127.0.0.1:8664; port 0: any)" },
    listen: { type: 'string', arg: 'ADDR:PORT', help: "the station's secure UDP socket, as the NICs' cluster policy lists it (default 127.0.0.1:0)" },
    'log-format': { type: 'string', arg: 'text|json', help: 'log lines on stderr (default text; json: one object a line)' },
    sharing: { type: 'string', arg: 'balanced|first-come', help: "how stations of one store share the NICs (default balanced)" },
    follow: { type: 'boolean', help: 'keep printing new ones as they arrive (NDJSON with --json) until Ctrl-C' },
  },
  common: ['store', 'cluster-key', 'id', 'lease-ms', 'timeout', 'busy-poll-us', 'emulator', 'no-daemon', 'json'],
  verbs: {
    ping: read('ping', 'ASF Presence Ping over ESP', 'ASF Presence Ping under the NIC\'s SA (UDP 664); prints the Pong.', 'ping nic-1'),
    state: read('state', "the host's ASF System State", "ASF System State under the NIC's SA: the host's S-state (S0 working, S3 suspend, S5 off).", 'state 127.0.1.1'),
    capabilities: read('capabilities', 'ASF Capabilities', "ASF Capabilities under the NIC's SA.", 'capabilities all --json'),
    reset: command('reset', 'Reset'),
    'power-up': command('power-up', 'Power-Up'),
    'power-down': command('power-down', 'Power-Down'),
    'power-cycle': command('power-cycle', 'Power Cycle'),
    enroll: {
      usage: 'enroll TARGET --psk-file FILE [options]',
      summary: 'write the PSK, negotiate + commit an SA (IKEv2)',
      about: "Write the pre-shared key as the NIC's trust anchor (through the emulator's control API), then negotiate a " +
        'child SA with the host agent (IKEv2; the host OS must be up) and commit it (SA_READY/SA_ACK/SA_CONFIRM). ' +
        `Creates the store and cluster key if missing. ${TARGET_HELP} 'all' = every NIC of the emulator.`,
      options: ['psk-file', 'concurrency'],
      examples: ['enroll all --psk-file var/psk.hex'],
    },
    refresh: {
      usage: 'refresh TARGET [options]',
      summary: 'new child SA + ready/ack/confirm commit',
      about: 'Negotiate a new child SA with the host agent (CREATE_CHILD_SA, or a new IKE SA) and commit it; the host ' +
        `OS must be up. A NIC another live station owns is skipped (the summary says whose). ${TARGET_HELP}`,
      options: ['concurrency'],
      examples: ['refresh nic-*'],
    },
    sa: {
      usage: 'sa manual TARGET [options]',
      summary: 'manual keying (RFC 4301 §4.5)',
      about: "Make an SA, install it in the NIC through the emulator's control API (standing in for the host driver) " +
        `and keep it in the store. Creates the store and cluster key if missing. ${TARGET_HELP}`,
      options: ['policy', 'transform', 'key-bits', 'concurrency'],
      examples: ['sa manual nic-1 --transform chacha20-poly1305'],
    },
    list: {
      usage: 'list [options]',
      summary: 'the NICs this station knows, with their SAs',
      about: "Every NIC in the store: address and secure port, owner and lease epoch, and the store's SA slots " +
        '(active, previous, pending generations, as nic-emulator status shows the NIC\'s).',
      options: [],
      examples: ['list --json'],
    },
    log: {
      usage: 'log TARGET [options]',
      summary: "the NIC's command log with outcomes",
      about: "The NIC's commands, oldest first: number, log entry, time, command, RMCP sequence and ASF tag, outcome and " +
        `the station that recorded it. ${TARGET_HELP}`,
      options: [],
      examples: ['log nic-1'],
    },
    audit: {
      usage: 'audit TARGET [options]',
      summary: "verify the NIC's hash-chained command log",
      about: "Check the NIC's command log: hash chain, MACs under the cluster key, sealed head. Names the first bad " +
        `entry; exit 1 if any log is tampered with. ${TARGET_HELP}`,
      options: [],
      examples: ['audit all'],
    },
    events: {
      usage: 'events [NIC] [options]',
      summary: 'ASF alerts the NICs sent, as stored',
      about: 'The alerts the NICs sent to the stations (host hang, boot, power, cable, security), oldest first, from ' +
        'the store: every station of the cluster, no daemon needed. A NIC by id narrows them to it; --follow streams ' +
        'new ones. docs/ALERTS.md.',
      options: ['follow'],
      examples: ['events nic-1 --follow --json'],
    },
    status: {
      usage: 'status [options]',
      summary: "the running daemon's view of its NICs",
      about: 'Ask this station\'s running daemon: the NICs it polls, host states, refreshes, last errors, and what it ' +
        'dropped, by reason. E_UNREACHABLE (exit 3) when no daemon runs.',
      options: [],
      examples: ['status --json'],
    },
    keys: {
      usage: 'keys --wireshark FILE [--ikev2 FILE] [options]',
      summary: 'export SA keys for Wireshark/tshark',
      about: 'Write esp_sa (and ikev2_decryption_table) UAT lines for every SA in the store, the newest 16 retired ' +
        'ones per NIC too; the files are 0600. docs/CAPTURES.md shows how tshark uses them.',
      options: ['wireshark', 'ikev2'],
      examples: ['keys --wireshark /tmp/esp_sa --ikev2 /tmp/ikev2_keys'],
    },
    serve: {
      usage: 'serve [options]',
      summary: 'run the station daemon',
      about: 'Run the station daemon: it keeps leases, polls its NICs, refreshes SAs on its timer while the host is ' +
        'up, and runs the verbs the CLI forwards to it. Stays in the foreground; SIGINT or SIGTERM stop it. ' +
        'Creates the store and cluster key if missing.',
      options: ['refresh-interval', 'max-down-time', 'lifetime', 'ike-rekey-interval', 'poll-interval', 'control', 'listen', 'log-format', 'sharing'],
      examples: ['serve --listen 127.0.0.1:7001 --log-format json'],
    },
    replay: {
      usage: 'replay TABLE [options]',
      summary: 'drive a state-transition table on a private lab',
      about: 'Bring up an isolated lab on loopback, drive every row of a state-transition table, print expected vs ' +
        'observed per row; exit 1 on any mismatch, 2 on a malformed table (file:line).',
      options: [],
      examples: ['replay fixtures/fig6.table'],
    },
  },
  groups: [
    ['Secure reads and commands (through the daemon when one runs)', ['ping', 'state', 'capabilities', 'reset', 'power-up', 'power-down', 'power-cycle']],
    ['Keys and NICs', ['enroll', 'refresh', 'sa', 'list', 'log', 'audit', 'events', 'keys']],
    ['Daemon and tables', ['serve', 'status', 'replay']],
  ],
  footer: [
    TARGET_HELP,
    'Exit: 0 ok, 1 failed, 2 usage error, 3 unreachable, 4 internal error (docs/CLI.md).',
  ],
};
