/**
 * nic-emulator: hosts a fleet of emulated management NICs and their hosts.
 * Run `nic-emulator --help` for the verbs; docs/CLI.md documents them with exit codes.
 *
 * The verbs that ask a running emulator (status, host, ...) load the argument tables and node:http only; `start`
 * loads the fleet, the firmware and the sockets (cli-start.ts, `await import()`).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ControlClient, DEFAULT_CONTROL } from '../lib/control-client.js';
import { EXIT, exitQuietlyOnEpipe, fail, fmtCounts, printJson, requireLoopback } from '../lib/cli.js';
import { parseCommandLine } from '../lib/cli-args.js';
import { runFleet } from '../lib/fleet-run.js';
import { isFleetTarget, resolveTargets } from '../lib/nic-targets.js';
import { EMULATOR_CLI } from './cli-spec.js';
import { LifelineError, UsageError } from '../common/errors.js';
import { ipmiUsersOption } from './ipmi-users-option.js';

const PROG = 'nic-emulator';

/** How many positional words each verb takes, the verb included: more is a usage error, not silently ignored. */
const MAX_POSITIONALS: Record<string, number> = { start: 1, status: 2, host: 3, 'exec-log': 2, fault: 4, policy: 3, 'ipmi-users': 2, stop: 1 };

/** A NIC as GET /v1/nics lists it (NicNode.status()): what TARGET resolution and the status line read. */
type NicStatus = Record<string, any> & { id: string; address: string; ports?: { clear: number; secure: number; ike: number } };

async function main(argv: string[]): Promise<void> {
  const cl = parseCommandLine(EMULATOR_CLI, argv);
  if (cl.kind !== 'run') {
    process.stdout.write(cl.text + '\n');
    process.exit(cl.kind === 'help' ? cl.exitCode : EXIT.OK);
  }
  const { verb, values, positionals } = cl;
  const most = MAX_POSITIONALS[verb];
  if (positionals.length > most) {
    throw new UsageError('E_USAGE', `unexpected argument '${positionals[most]}' after '${positionals.slice(0, most).join(' ')}'; run 'nic-emulator ${verb} --help'`);
  }
  const control = (values.control as string | undefined) ?? DEFAULT_CONTROL;
  const json = values.json === true;
  const client = () => {
    const c = ControlClient.parse(control, '--control');
    requireLoopback('--control', control, c.host); // the control API listens on loopback only: nothing to ask elsewhere
    return c;
  };
  const target = verb === 'start' || verb === 'stop' ? undefined : positionals[1];
  const nics = () => client().get<NicStatus[]>('/v1/nics');
  // The NICs a TARGET of several names (lib/nic-targets.ts); one NIC by id or address the emulator finds itself.
  const fleet = async (): Promise<string[]> =>
    resolveTargets(target!, (await nics()).map((n) => ({ id: n.id, address: n.address, ports: n.ports ? [n.ports.clear, n.ports.secure, n.ports.ike] : [] })));
  const isFleet = target !== undefined && isFleetTarget(target);
  const path = (nic: string, rest = '') => `/v1/nics/${encodeURIComponent(nic)}${rest}`;

  switch (verb) {
    case 'start':
      return (await import('./cli-start.js')).start(values, control);
    case 'status': {
      // The fleet (no TARGET, a list, a pattern, all): a table with a header and a summary; one NIC: its detail.
      let data: NicStatus | NicStatus[];
      if (target === undefined) data = await nics();
      else if (isFleet) {
        const ids = await fleet();
        data = (await nics()).filter((n) => ids.includes(n.id));
      } else data = await client().get<NicStatus>(path(target));
      if (json) return printJson(data);
      process.stdout.write((Array.isArray(data) ? statusTable(data) : statusDetail(data)).join('\n') + '\n');
      return;
    }
    case 'host': {
      const event = positionals[2];
      if (!target || !event) throw new UsageError('E_USAGE', 'usage: nic-emulator host TARGET EVENT (see nic-emulator host --help for events)');
      const one = (nic: string) => client().post<{ from: string; to: string }>(path(nic, '/host'), { event });
      if (isFleet) {
        await runFleet({ prog: PROG, verb: `host ${event}`, ids: await fleet(), json, one: async (nic) => ({ event, ...(await one(nic)) }), line: (nic, r) => `${nic}: ${event}: ${r.from} -> ${r.to}` });
        return;
      }
      const r = await one(target);
      if (json) return printJson({ ok: true, nic: target, event, ...r });
      process.stdout.write(`${target}: ${event}: ${r.from} -> ${r.to}\n`);
      return;
    }
    case 'exec-log': {
      if (!target) throw new UsageError('E_USAGE', 'usage: nic-emulator exec-log TARGET');
      const one = (nic: string) => client().get<Record<string, unknown>[]>(path(nic, '/exec-log'));
      if (isFleet) {
        await runFleet({ prog: PROG, verb, ids: await fleet(), json, concurrency: 1, one: async (nic) => ({ entries: await one(nic) }), line: (nic, r) => r.entries.map((e) => `${nic} ${execLine(e)}`).join('\n') || `${nic}: nothing executed` });
        return;
      }
      const log = await one(target);
      if (json) return printJson(log);
      for (const e of log) process.stdout.write(execLine(e) + '\n');
      return;
    }
    case 'fault': {
      const [, , kind, at] = positionals;
      if (!target || kind !== 'tear-next-write' || at === undefined) throw new UsageError('E_USAGE', 'usage: nic-emulator fault TARGET tear-next-write BYTE');
      if (!/^\d+$/.test(at) || !Number.isSafeInteger(Number(at))) throw new UsageError('E_USAGE', `tear-next-write: BYTE must be a whole number >= 0, got '${at}'`);
      const one = async (nic: string) => void (await client().post(path(nic, '/fault'), { kind, atByte: Number(at) }));
      const text = (nic: string) => `${nic}: next EEPROM write will be torn after ${at} bytes`;
      if (isFleet) return void (await runFleet({ prog: PROG, verb: 'fault', ids: await fleet(), json, one: async (nic) => (await one(nic), { kind, atByte: Number(at) }), line: text }));
      await one(target);
      if (json) return printJson({ ok: true });
      process.stdout.write(text(target) + '\n');
      return;
    }
    case 'policy': {
      const file = positionals[2];
      if (!target || !file) throw new UsageError('E_USAGE', 'usage: nic-emulator policy TARGET FILE');
      const text = await readPolicyFile(file);
      const one = async (nic: string) => void (await client().post(path(nic, '/policy'), { text, source: file }));
      const line = (nic: string) => `${nic}: cluster policy from ${file} written`;
      if (isFleet) return void (await runFleet({ prog: PROG, verb, ids: await fleet(), json, one: async (nic) => (await one(nic), { file }), line }));
      await one(target);
      if (json) return printJson({ ok: true });
      process.stdout.write(line(target) + '\n');
      return;
    }
    case 'ipmi-users': {
      const specs = (values['ipmi-user'] as string[] | undefined) ?? [];
      if (!target || (specs.length === 0) === !values.off) {
        throw new UsageError('E_USAGE', 'usage: nic-emulator ipmi-users TARGET --ipmi-user NAME:PASSWORD[:PRIV] ... | --off');
      }
      const config = values.off ? { enabled: false, users: [] } : ipmiUsersOption(specs)!;
      const result = { lanplus: config.enabled, users: config.users.map((u) => ({ name: u.name, privilege: u.privilege })) };
      const one = async (nic: string) => void (await client().post(path(nic, '/ipmi-users'), config));
      const line = (nic: string) => (config.enabled ? `${nic}: lanplus on, IPMI users ${config.users.map((u) => `${u.name} (${u.privilege})`).join(', ')}` : `${nic}: lanplus off, no IPMI users`);
      if (isFleet) return void (await runFleet({ prog: PROG, verb, ids: await fleet(), json, one: async (nic) => (await one(nic), result), line }));
      await one(target);
      if (json) return printJson({ ok: true, nic: target, ...result });
      process.stdout.write(line(target) + '\n');
      return;
    }
    case 'stop': {
      // Nothing listening at the control address: the emulator is stopped, which is what was asked (as `systemctl
      // stop` of a stopped unit). Said on stderr, exit 0; JSON says running: false.
      const c = client();
      const stopped = await c.post('/v1/shutdown').then(
        () => true,
        (e: unknown) => {
          if (e instanceof LifelineError && e.code === 'E_UNREACHABLE' && /ECONNREFUSED/.test(e.message)) return false;
          throw e;
        },
      );
      if (json) return printJson({ ok: true, running: stopped });
      if (stopped) process.stdout.write('emulator stopping\n');
      else process.stderr.write(`${PROG}: no emulator is running at ${c.host}:${c.port}; nothing to stop\n`);
      return;
    }
    default:
      throw new UsageError('E_USAGE', `unknown command '${verb}'; run 'nic-emulator --help'`);
  }
}

/** A NIC's SA slots by generation: `6/5/-` under the header `SA act/prev/pend` (mgmt-station list says the same). */
function saSlots(r: NicStatus): string {
  const g = (x: any) => (x ? String(x.generation) : '-');
  return r.sa ? `${g(r.sa.active)}/${g(r.sa.previous)}/${g(r.sa.pending)}` : '-';
}

/** The sum of a counter object's values (a NIC's drops by reason). */
const total = (c: Record<string, number> | undefined | null): number => Object.values(c ?? {}).reduce((a, b) => a + b, 0);

/**
 * The fleet as `status` prints it: a header, one line per NIC in about 80 columns (columns as wide as their widest
 * cell; CLEAR and SECURE count the packets the NIC took on each port), then a summary of the fleet. What does not fit goes to the summary (drops by reason, across the fleet) or
 * to one NIC's detail (`status nic-1`: drops by reason, IPMI, EEPROM writes by region) and --json.
 */
function statusTable(rows: NicStatus[]): string[] {
  const head = ['NIC', 'ADDRESS', 'HOST', 'LINK', 'SA act/prev/pend', 'CLEAR', 'SECURE', 'DROPPED', 'REFUSED', 'WRITES'];
  const right = [false, false, false, false, false, true, true, true, true, true];
  const cells = rows.map((r) => {
    const c = r.counters;
    return [
      r.id, nicAddress(r), r.state === 'running' ? String(r.host) : String(r.state), String(r.link ?? '-'), saSlots(r),
      c ? String(c.accepted.clear) : '-', c ? String(c.accepted.secure) : '-', c ? String(total(c.dropped)) : '-',
      c ? String(c.refusedClear) : '-', String(r.eepromWrites?.total ?? '-'),
    ];
  });
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i].length)));
  const line = (row: string[]) => row.map((v, i) => (right[i] ? v.padStart(width[i]) : v.padEnd(width[i]))).join(' ').trimEnd();
  const out = [line(head), ...cells.map(line)];
  // The summary: how many NICs run, hosts and links by state, drops across the fleet by reason, failures named.
  const count = (xs: string[]) => {
    const m: Record<string, number> = {};
    for (const x of xs) m[x] = (m[x] ?? 0) + 1;
    return Object.entries(m).map(([k, v]) => `${k}=${v}`).join(' ') || '-';
  };
  const dropped: Record<string, number> = {};
  for (const r of rows) for (const [k, v] of Object.entries((r.counters?.dropped ?? {}) as Record<string, number>)) dropped[k] = (dropped[k] ?? 0) + v;
  const running = rows.filter((r) => r.state === 'running');
  const withSa = rows.filter((r) => r.sa?.active).length;
  out.push(
    `${rows.length} NIC${rows.length === 1 ? '' : 's'}, ${running.length} running, ${withSa} with an SA: host ${count(running.map((r) => String(r.host)))}; ` +
      `link ${count(running.map((r) => String(r.link)))}`,
    `packets: ${fmtCounts('dropped', dropped)} refused=${rows.reduce((a, r) => a + (r.counters?.refusedClear ?? 0), 0)}`,
  );
  for (const r of rows.filter((x) => x.error)) out.push(`${r.id}: ${r.state}: ${r.error}`);
  return out;
}

/** A NIC's address as a user names it (docs/CLI.md, TARGET): ADDRESS, or ADDRESS:PORT when NICs share the address. */
function nicAddress(r: NicStatus): string {
  return r.ports && r.ports.clear !== 623 ? `${r.address}:${r.ports.clear}` : String(r.address);
}

/**
 * One NIC as `status NIC` prints it: a line each for its place, host, SA slots, packets and counters (in the one form
 * both tools use, lib/cli.ts fmtCounts: `dropped=0`, `dropped=3 (replay=2,icv=1)`), lanplus and EEPROM writes.
 */
function statusDetail(r: NicStatus): string[] {
  const g = (x: any) => (x ? x.generation : '-');
  const c = r.counters;
  const ports = r.ports ? ` (clear ${r.ports.clear}, secure ${r.ports.secure}, ike ${r.ports.ike})` : '';
  return [
    `${r.id}: ${r.address}${ports}, ${r.state}${r.error ? ': ' + r.error : ''}`,
    `  host=${r.host} link=${r.link}${r.owner?.station ? ` owner=${r.owner.station}` : ''}`,
    r.sa ? `  sa active=${g(r.sa.active)} previous=${g(r.sa.previous)} pending=${g(r.sa.pending)}` : '  sa -',
    c ? `  rx clear=${c.accepted.clear} secure=${c.accepted.secure} ${fmtCounts('dropped', c.dropped)} refused=${c.refusedClear} executed=${c.executed}` : '  rx -',
    `  ${ipmiSummary(r.ipmi)}`,
    `  ${fmtCounts('eeprom-writes', r.eepromWrites?.byRegion)}`,
  ];
}

/** One entry of a NIC's executed-command log. */
function execLine(e: Record<string, unknown>): string {
  const ipmi = e.ipmi as { user: string; sessionId: string; request: string } | undefined;
  const how = ipmi ? `user=${ipmi.user} session=${ipmi.sessionId} '${ipmi.request}'` : `seq=${e.rmcpSeq} tag=${e.tag} sa=${e.generation}`;
  return `${e.at} ${e.via} ${e.command} ${how} ${e.hostBefore}->${e.hostAfter}`;
}

/** One status line's lanplus part: off, or on with its sessions and what it refused and dropped. */
function ipmiSummary(ipmi: any): string {
  if (!ipmi) return 'ipmi=-';
  if (!ipmi.lanplus) return 'ipmi=off';
  const c = ipmi.counters;
  return `ipmi=on users=${ipmi.users.length} sessions=${ipmi.sessions.length}` + (c ? ` ${fmtCounts('ipmi-refused', c.refused)} ${fmtCounts('ipmi-dropped', c.dropped)}` : '');
}

/**
 * A policy file, read up to what a NIC's EEPROM holds (CLUSTER_POLICY_MAX bytes) and one byte more: a longer file,
 * or a device that never ends (/dev/zero), is E_POLICY without reading the rest. Unreadable: E_USAGE.
 */
async function readPolicyFile(file: string): Promise<string> {
  const { CLUSTER_POLICY_MAX } = await import('../firmware/eeprom-image.js');
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new UsageError('E_USAGE', `cannot read policy file ${file}: ${(e as Error).message}`);
  }
  const tooLong = (what: string) => new UsageError('E_POLICY', `${file}: the policy is ${what} bytes; the NIC's EEPROM holds at most ${CLUSTER_POLICY_MAX}`);
  const buf = Buffer.alloc(CLUSTER_POLICY_MAX + 1);
  let n = 0;
  try {
    const st = fstatSync(fd);
    if (st.isFile() && st.size > CLUSTER_POLICY_MAX) throw tooLong(String(st.size)); // a file says its size: not read
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError('E_USAGE', `cannot read policy file ${file}: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
  if (n > CLUSTER_POLICY_MAX) throw tooLong(`over ${CLUSTER_POLICY_MAX}`); // a device or pipe that goes on (/dev/zero)
  return buf.subarray(0, n).toString('utf8');
}

exitQuietlyOnEpipe();
main(process.argv.slice(2)).catch((e) => fail(PROG, e, process.argv.includes('--json')));
