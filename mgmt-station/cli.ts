/**
 * mgmt-station: the management station's command line. `mgmt-station --help` lists the verbs; docs/CLI.md
 * documents them with their exit codes.
 *
 * This file loads only what every verb needs (the argument tables, the announce file, node:http): a verb the
 * station's running daemon takes is forwarded from here (cli-daemon.ts), and only a verb this process runs itself
 * loads the store, the protocol and the daemon (cli-local.ts, `await import()`), so a forwarded verb starts in
 * little more than Node's own start-up (docs/PERFORMANCE.md, "CLI latency").
 */
import { EXIT, exitQuietlyOnEpipe, fail, intOption } from '../lib/cli.js';
import { concurrencyOption } from '../lib/fleet-run.js';
import { parseCommandLine } from '../lib/cli-args.js';
import { DEFAULT_STORE, STATION_CLI } from './cli-spec.js';
import { LifelineError, UsageError } from '../common/errors.js';
import { announceFile, announcedDaemon, announcedStore, type Announced } from './announce.js';
import { COMMANDS, READS, isCommand } from './cli-text.js';
import { daemonStatus, forwardKeying, forwardVerb } from './cli-daemon.js';

const PROG = 'mgmt-station';

/** The verbs whose TARGET names NICs (lib/nic-targets.ts): one by id or address, a list, a pattern or all. */
const NIC_VERBS = new Set([...Object.keys(READS), ...COMMANDS, 'enroll', 'refresh', 'sa', 'log', 'audit']);

async function main(argv: string[]): Promise<void> {
  const cl = parseCommandLine(STATION_CLI, argv);
  if (cl.kind !== 'run') {
    process.stdout.write(cl.text + '\n');
    process.exit(cl.kind === 'help' ? cl.exitCode : EXIT.OK);
  }
  const { verb, positionals } = cl;
  const values = cl.values as Record<string, string | boolean | undefined>;
  const json = values.json === true;
  // Each verb takes a fixed number of positionals, checked before anything is opened: a missing one or an extra
  // one (e.g. 'state nic-1 nic-2') is a usage error, whatever the state of the store.
  const verbArgs = VERB_ARGS[verb];
  const words = verbArgs.split(' ').filter(Boolean);
  const arity = words.length + 1; // '[NIC]': optional
  const required = words.filter((w) => !w.startsWith('[')).length + 1;
  if (positionals.length > arity) throw new UsageError('E_USAGE', `${verb} takes ${arity - 1 || 'no'} argument${arity === 2 ? '' : 's'}; unexpected '${positionals.slice(arity).join(' ')}'; run 'mgmt-station ${verb} --help'`);
  if (positionals.length < required || (verb === 'sa' && positionals[1] !== 'manual')) throw new UsageError('E_USAGE', `usage: mgmt-station ${verb} ${verbArgs}`);
  const target = verb === 'sa' ? positionals[2] : NIC_VERBS.has(verb) ? positionals[1] : undefined;
  const num = (v: string | undefined, def: number, name: string) => intOption(v, def, name, 1);
  const timeoutMs = num(values.timeout as string | undefined, 3000, 'timeout');
  // NICs a fleet TARGET runs at once (lib/fleet-run.ts), here or through the daemon.
  const concurrency = concurrencyOption(values.concurrency as string | undefined);
  const storeUrl = (values.store as string | undefined) ?? process.env.LIFELINE_STORE ?? DEFAULT_STORE;
  const stationId = (values.id as string | undefined) ?? 'station-1';
  const announce = announceFile(storeUrl, stationId);
  const runningDaemon = (file: string) => announcedDaemon(file, announcedStore(storeUrl));
  // A verb the daemon runs gets the CLI's --timeout, else the one the daemon was started with.
  const daemonTimeoutMs = (d: Announced) => (values.timeout !== undefined ? timeoutMs : d.timeoutMs ?? timeoutMs);
  // Verbs go through this station's daemon when it runs (one process holds the sequence state).
  if (!values['no-daemon'] && target !== undefined && (READS[verb] || isCommand(verb) || verb === 'refresh')) {
    const d = runningDaemon(announce);
    if (d && (await forwardVerb(d, verb, target, json, daemonTimeoutMs(d), concurrency))) return;
  }
  // The verbs that change a NIC's SA or PSK go through the daemon too (enroll, sa manual; refresh above): run
  // here, they would leave the daemon's session and key exchange on an SA and PSK the NIC retired.
  if (!values['no-daemon'] && target !== undefined && (verb === 'enroll' || verb === 'sa')) {
    const d = runningDaemon(announce);
    // As the verbs above: the CLI waits for it that long (at least what the key exchange gets) plus a margin.
    if (d && (await forwardKeying(d, verb, target, values, json, daemonTimeoutMs(d), concurrency))) return;
  }
  if (verb === 'status') {
    // The daemon's view: leases it polls, host states, refreshes, and what it dropped (by reason).
    const d = runningDaemon(announce);
    if (!d) throw new LifelineError('E_UNREACHABLE', `no daemon of station '${stationId}' is running for this store; start one with 'mgmt-station serve'`);
    return daemonStatus(d, json);
  }
  const { runLocal } = await import('./cli-local.js');
  return runLocal({ verb, positionals, values, json, target, timeoutMs, concurrency, storeUrl, stationId, announce, runningDaemon });
}

/** The positional arguments of each verb, as its usage line shows them (their count is the verb's arity). */
const VERB_ARGS: Record<string, string> = {
  ping: 'TARGET', state: 'TARGET', capabilities: 'TARGET', reset: 'TARGET', 'power-up': 'TARGET', 'power-down': 'TARGET', 'power-cycle': 'TARGET',
  sa: 'manual TARGET', enroll: 'TARGET', refresh: 'TARGET', replay: 'TABLE', log: 'TARGET', audit: 'TARGET',
  list: '', keys: '', status: '', serve: '', events: '[NIC]',
};

exitQuietlyOnEpipe();
main(process.argv.slice(2)).catch((e) => fail(PROG, e, process.argv.includes('--json')));
