/**
 * Issue 17, the CLI frictions, in process (lib/cli-args.ts, lib/nic-targets.ts, lib/fleet-run.ts and both tools'
 * command-line tables): per-verb help in 80 columns with only the verb's options, --version, an option the verb
 * does not take is a usage error, "did you mean", NICs by id, address, list, pattern or all, one way to print a
 * counter, fleet summaries by error code, an illegal host transition exits 1.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { editDistance, globalHelp, parseCommandLine, suggest, verbHelp, versionLine, type CommandLine, type ToolSpec } from '../../lib/cli-args.js';
import { resolveTargets, isFleetTarget, needsLookup, type KnownNic } from '../../lib/nic-targets.js';
import { summaryLine } from '../../lib/fleet-run.js';
import { EXIT, exitCodeFor, fmtCounts } from '../../lib/cli.js';
import { STATION_CLI } from '../../mgmt-station/cli-spec.js';
import { EMULATOR_CLI } from '../../nic-emulator/cli-spec.js';
import { LifelineError } from '../../common/errors.js';
import { ROOT } from '../support/lab.js';

const TOOLS: ToolSpec[] = [STATION_CLI, EMULATOR_CLI];

/** The E_USAGE message parseCommandLine throws for `argv`. */
function usageError(tool: ToolSpec, argv: string[]): string {
  try {
    parseCommandLine(tool, argv);
  } catch (e) {
    assert.ok(e instanceof LifelineError, String(e));
    assert.equal(e.code, 'E_USAGE');
    assert.equal(exitCodeFor(e), EXIT.USAGE);
    assert.doesNotMatch(e.message, /\n/, 'one line');
    return e.message;
  }
  assert.fail(`${tool.prog} ${argv.join(' ')} was accepted`);
}

function run(cl: CommandLine): Extract<CommandLine, { kind: 'run' }> {
  assert.equal(cl.kind, 'run');
  return cl as Extract<CommandLine, { kind: 'run' }>;
}

const longLines = (text: string) => text.split('\n').filter((l) => l.length > 80);
const optionsIn = (text: string) => new Set([...text.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => m[1]));

describe('CLI: per-verb help, --version, options per verb, did you mean (issue 17)', () => {
  for (const tool of TOOLS) {
    describe(tool.prog, () => {
      it('--help: a short list of every verb, no line over 80 columns', () => {
        const text = globalHelp(tool);
        assert.deepEqual(longLines(text), []);
        assert.ok(text.split('\n').length <= 50, `${text.split('\n').length} lines`);
        for (const verb of Object.keys(tool.verbs)) assert.match(text, new RegExp(`^  ${verb} `, 'm'), verb);
        const h = parseCommandLine(tool, ['--help']);
        assert.deepEqual(h, { kind: 'help', text, exitCode: 0 });
        assert.deepEqual(parseCommandLine(tool, ['-h']), h);
        assert.deepEqual(parseCommandLine(tool, ['help']), h);
        assert.deepEqual(parseCommandLine(tool, []), { kind: 'help', text, exitCode: 2 }, 'no verb: the list, exit 2');
      });

      for (const [verb, spec] of Object.entries(tool.verbs)) {
        it(`${verb} --help: usage, what it does, only its options, an example, 80 columns`, () => {
          const text = verbHelp(tool, verb);
          assert.deepEqual(longLines(text), []);
          assert.match(text, new RegExp(`^Usage: ${tool.prog} ${verb} `));
          assert.match(text, new RegExp(`^Examples?:\\n  ${tool.prog} ${verb}`, 'm'));
          for (const form of [[verb, '--help'], [verb, '-h'], ['help', verb]]) {
            assert.deepEqual(parseCommandLine(tool, form), { kind: 'help', text, exitCode: 0 }, form.join(' '));
          }
          // Every option named is the verb's own or a common one; each of its own is described.
          const allowed = new Set([...spec.options, ...tool.common, 'help']);
          for (const o of optionsIn(text)) assert.ok(allowed.has(o), `${verb} --help names --${o}`);
          const own = text.split('\nCommon options:')[0];
          for (const o of spec.options) assert.match(own, new RegExp(`^  --${o}\\b`, 'm'), `--${o} described`);
        });
      }

      it('--version and -V: the version in package.json', () => {
        const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
        const v = parseCommandLine(tool, ['--version']);
        assert.deepEqual(v, { kind: 'version', text: versionLine(tool.prog) });
        assert.match(versionLine(tool.prog), new RegExp(`^${tool.prog} ${version.replace(/\./g, '\\.')} \\(lifeline, node v\\d+`));
        assert.deepEqual(parseCommandLine(tool, ['-V']), v);
      });

      it('a mistyped verb: E_USAGE with the nearest verb', () => {
        const verb = Object.keys(tool.verbs).find((v) => v.length >= 5)!;
        const typo = verb.slice(0, 1) + verb.slice(2, 3) + verb.slice(1, 2) + verb.slice(3); // two letters swapped
        assert.match(usageError(tool, [typo]), new RegExp(`^unknown command '${typo}'; did you mean '${verb}'\\?`));
        assert.match(usageError(tool, ['zzzzzz']), /^unknown command 'zzzzzz'; run '.* --help' for the list$/);
        assert.match(usageError(tool, ['help', typo]), new RegExp(`did you mean '${verb}'`));
      });
    });
  }

  it('serve --help shows --log-format', () => {
    assert.match(verbHelp(STATION_CLI, 'serve'), /^  --log-format text\|json /m);
    assert.match(verbHelp(EMULATOR_CLI, 'start'), /^  --log-format text\|json /m);
  });

  it("the issue's command line: mgmt-station list --psk-file /nonexistent --transform bogus --listen 1.2.3.4:1 is E_USAGE naming the option and the verb", () => {
    assert.equal(usageError(STATION_CLI, ['list', '--psk-file', '/nonexistent', '--transform', 'bogus', '--listen', '1.2.3.4:1']),
      "list does not take --psk-file (see 'mgmt-station list --help')");
    assert.match(usageError(STATION_CLI, ['state', 'nic-1', '--listen', '1.2.3.4:1']), /^state does not take --listen /);
    assert.match(usageError(STATION_CLI, ['sa', 'manual', 'nic-1', '--psk-file', 'x']), /^sa manual does not take --psk-file /);
    assert.match(usageError(EMULATOR_CLI, ['status', '--nics', '3']), /^status does not take --nics /);
    assert.match(usageError(EMULATOR_CLI, ['host', 'nic-1', 'hang', '--off']), /^host does not take --off /);
  });

  it('the options each verb takes, and the common ones everywhere', () => {
    const r = run(parseCommandLine(STATION_CLI, ['enroll', 'all', '--psk-file', 'p', '--store', 'sqlite:x', '--cluster-key', 'k', '--emulator', '127.0.0.1:1', '--json', '--no-daemon', '--timeout', '9']));
    assert.equal(r.verb, 'enroll');
    assert.deepEqual(r.positionals, ['enroll', 'all']);
    assert.equal(r.values['psk-file'], 'p');
    run(parseCommandLine(STATION_CLI, ['serve', '--listen', '127.0.0.1:0', '--control', '127.0.0.1:0', '--log-format', 'json', '--poll-interval', '5']));
    run(parseCommandLine(STATION_CLI, ['sa', 'manual', 'nic-1', '--policy', 'esp', '--transform', 'aes-gcm-16', '--key-bits', '256']));
    run(parseCommandLine(EMULATOR_CLI, ['start', '--nics', '2', '--log-level', 'warn', '--ipmi-user', 'a:b', '--ipmi-user', 'c:d']));
    run(parseCommandLine(EMULATOR_CLI, ['ipmi-users', 'nic-1', '--off', '--control', '127.0.0.1:1', '--json']));
  });

  it('did you mean, for options: a mistyped option of the verb, or an option the verb does not take but nearly does', () => {
    assert.equal(usageError(STATION_CLI, ['state', 'nic-1', '--tmeout', '5']), "Unknown option '--tmeout'; did you mean --timeout? (see 'mgmt-station state --help')");
    assert.match(usageError(STATION_CLI, ['enroll', 'all', '--psk-fle', 'x']), /^Unknown option '--psk-fle'; did you mean --psk-file\?/);
    assert.match(usageError(EMULATOR_CLI, ['start', '--nic', '3']), /^Unknown option '--nic'; did you mean --nics\?/);
    assert.match(usageError(STATION_CLI, ['state', 'nic-1', '--bogus']), /^Unknown option '--bogus' \(see 'mgmt-station state --help'\)$/);
  });

  it('suggest: prefixes, swaps, one edit in a short word, nothing far away', () => {
    const verbs = Object.keys(STATION_CLI.verbs);
    assert.equal(suggest('stat', verbs), 'state');
    assert.equal(suggest('stauts', verbs), 'status');
    assert.equal(suggest('cap', verbs), 'capabilities');
    assert.equal(suggest('enrol', verbs), 'enroll');
    assert.equal(suggest('power', verbs), null, 'a prefix of four verbs names none');
    assert.equal(suggest('xyz', verbs), null);
    assert.equal(editDistance('ab', 'ba'), 1);
    assert.equal(editDistance('kitten', 'sitting'), 3);
  });
});

describe('CLI: a NIC by id or address, a list, a pattern or all (issue 17)', () => {
  const addressPerNic: KnownNic[] = [1, 2, 3, 10].map((i) => ({ id: `nic-${i}`, address: `127.0.9.${10 + i}`, ports: [623, 664, 500] }));
  const portPerNic: KnownNic[] = [1, 2, 3].map((i) => ({ id: `nic-${i}`, address: '127.0.0.1', ports: [16230 + 3 * (i - 1), 16231 + 3 * (i - 1), 16232 + 3 * (i - 1)] }));

  it('which targets are fleets and which need the list', () => {
    for (const t of ['all', 'nic-1,nic-2', 'nic-*', '127.0.9.1?']) assert.equal(isFleetTarget(t), true, t);
    for (const t of ['nic-1', '127.0.9.11', '127.0.0.1:16233']) assert.equal(isFleetTarget(t), false, t);
    assert.equal(needsLookup('127.0.9.11'), true);
    assert.equal(needsLookup('nic-1'), false, 'a plain id costs no listing');
  });

  it('an address (state 127.0.9.11 as sa manual 127.0.9.11), ADDRESS:PORT in port-per-NIC mode', () => {
    assert.deepEqual(resolveTargets('127.0.9.11', addressPerNic), ['nic-1']);
    assert.deepEqual(resolveTargets('127.0.0.1:16234', portPerNic), ['nic-2'], 'any of the NIC\'s ports');
    assert.throws(() => resolveTargets('127.0.0.1', portPerNic), (e: LifelineError) => e.code === 'E_USAGE' && /127\.0\.0\.1 is the address of 3 NICs .*give ADDRESS:PORT or an id/.test(e.message));
    assert.throws(() => resolveTargets('127.0.9.99', addressPerNic), (e: LifelineError) => e.code === 'E_NOT_FOUND' && /no NIC at 127\.0\.9\.99/.test(e.message));
    assert.deepEqual(resolveTargets('nic-77', addressPerNic), ['nic-77'], 'an unknown id is the verb\'s to report');
  });

  it('all, lists (in the order given, each NIC once), patterns on ids and addresses', () => {
    assert.deepEqual(resolveTargets('all', addressPerNic), ['nic-1', 'nic-2', 'nic-3', 'nic-10']);
    assert.deepEqual(resolveTargets('nic-3,nic-1,127.0.9.13', addressPerNic), ['nic-3', 'nic-1']);
    assert.deepEqual(resolveTargets('nic-?', addressPerNic), ['nic-1', 'nic-2', 'nic-3']);
    assert.deepEqual(resolveTargets('nic-1*', addressPerNic), ['nic-1', 'nic-10']);
    assert.deepEqual(resolveTargets('127.0.9.1?', addressPerNic), ['nic-1', 'nic-2', 'nic-3']);
    assert.throws(() => resolveTargets('web-*', addressPerNic), (e: LifelineError) => e.code === 'E_NOT_FOUND' && /no NIC matches 'web-\*'/.test(e.message));
    assert.throws(() => resolveTargets('nic-1,,nic-2', addressPerNic), (e: LifelineError) => e.code === 'E_USAGE');
  });
});

describe('CLI: one vocabulary for counters, fleet summaries, exit codes (issue 17)', () => {
  it('a counter by reason reads the same in both tools: dropped=0, dropped=3 (replay=2,icv=1)', () => {
    assert.equal(fmtCounts('dropped', {}), 'dropped=0');
    assert.equal(fmtCounts('dropped', { replay: 0, icv: 0 }), 'dropped=0');
    assert.equal(fmtCounts('dropped', null), 'dropped=0');
    assert.equal(fmtCounts('dropped', { replay: 2, icv: 1, link_down: 0 }), 'dropped=3 (replay=2,icv=1)');
  });

  it('a fleet summary: done of asked, failures by code, skipped and whose', () => {
    const base = { nics: 4, done: 2, seconds: 1.234, skipped: [] as { nic: string; owner: string }[] };
    assert.equal(summaryLine('state', { ...base, done: 4, failed: [], failedByCode: {} }), 'state: 4/4 NICs in 1.2 s');
    const failed = [{ nic: 'nic-2', code: 'E_TIMEOUT', error: '' }, { nic: 'nic-3', code: 'E_FENCED', error: '' }];
    assert.equal(summaryLine('power-cycle', { ...base, failed, failedByCode: { E_TIMEOUT: 1, E_FENCED: 1 }, skipped: [{ nic: 'nic-4', owner: 'B' }], viaDaemon: true }),
      "power-cycle: 2/4 NICs in 1.2 s, 2 failed (E_FENCED 1, E_TIMEOUT 1), 1 skipped (owned by station 'B') [via daemon]");
  });

  it('an illegal host transition is the operation refused (exit 1), not a usage error (exit 2)', () => {
    assert.equal(exitCodeFor(new LifelineError('E_ILLEGAL_TRANSITION', "host event 'hang' is not possible in state 'off'")), EXIT.FAILED);
    assert.equal(exitCodeFor(new LifelineError('E_USAGE', 'x')), EXIT.USAGE);
    assert.equal(exitCodeFor(new LifelineError('E_POLICY', 'x')), EXIT.USAGE);
  });
});
