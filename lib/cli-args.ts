/**
 * Command lines as data, for both executables: each verb names the options it takes, its usage line, what it does
 * and an example. From that one table come the per-verb help (`prog VERB --help`, `prog help VERB`, 80 columns),
 * the short global help, `--version`, and the checks node:util parseArgs does not make: an option the verb does not
 * take is a usage error naming the option and the verb, and a mistyped verb or option gets a "did you mean".
 * Flags declared as data, as undici and tsx do (../shared/STYLE.md); no I/O here but reading package.json once.
 */
import { parseArgs } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UsageError } from '../common/errors.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** The value's name in help and usage lines: FILE, MS, HOST:PORT. */
  arg?: string;
  /** What it does, a sentence or two (wrapped to 80 columns in the help). */
  help: string;
}

export interface VerbSpec {
  /** The usage line after the program's name, e.g. `enroll TARGET --psk-file FILE [options]`. */
  usage: string;
  /** One line for the global help's list. */
  summary: string;
  /** What it does, a few sentences (wrapped). */
  about: string;
  /** The options it takes besides the tool's common ones. */
  options: readonly string[];
  examples: readonly string[];
}

export interface ToolSpec {
  prog: string;
  /** One line under the global usage line. */
  tagline: string;
  options: Readonly<Record<string, OptionSpec>>;
  /** Options every verb takes. */
  common: readonly string[];
  verbs: Readonly<Record<string, VerbSpec>>;
  /** The global help's sections: a title and the verbs under it. */
  groups: readonly (readonly [string, readonly string[]])[];
  /** Lines at the end of every help: what a TARGET is, exit codes, where the docs are. */
  footer: readonly string[];
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export type CommandLine =
  | { kind: 'help'; text: string; exitCode: number }
  | { kind: 'version'; text: string }
  | { kind: 'run'; verb: string; values: Values; positionals: string[] };

export const HELP_WIDTH = 80;

/** -h/--help and -V/--version, which every tool and verb takes (as ipmitool, FreeIPMI and swanctl do). */
const BUILTIN: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', help: 'this help (VERB --help: that verb only)' },
  version: { type: 'boolean', short: 'V', help: 'print the version and exit' },
};

/**
 * Parse `argv` against `tool`: help and version asked for, or the verb with its options and positionals. Throws
 * UsageError (E_USAGE) for an unknown verb or option (with a suggestion when one is close), an option the verb
 * does not take, and whatever node:util parseArgs refuses (its TypeError, turned into E_USAGE by lib/cli.ts).
 * Positional counts are the caller's to check.
 */
export function parseCommandLine(tool: ToolSpec, argv: string[]): CommandLine {
  const options = { ...tool.options, ...BUILTIN };
  let parsed: { values: Record<string, unknown>; positionals: string[]; tokens: ({ kind: 'option'; name: string; rawName: string } | { kind: 'positional' | 'option-terminator' })[] };
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      tokens: true,
      options: Object.fromEntries(Object.entries(options).map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }])),
    }) as unknown as typeof parsed;
  } catch (e) {
    throw unknownOption(tool, argv, e) ?? e;
  }
  const { values, positionals, tokens } = parsed;
  const verb = positionals[0];
  if (verb === 'help') {
    const about = positionals[1];
    if (about === undefined) return { kind: 'help', text: globalHelp(tool), exitCode: 0 };
    return { kind: 'help', text: verbHelp(tool, knownVerb(tool, about)), exitCode: 0 };
  }
  if (values.version) return { kind: 'version', text: versionLine(tool.prog) };
  if (values.help) return { kind: 'help', text: verb === undefined ? globalHelp(tool) : verbHelp(tool, knownVerb(tool, verb)), exitCode: 0 };
  if (verb === undefined) return { kind: 'help', text: globalHelp(tool), exitCode: 2 };
  const spec = tool.verbs[knownVerb(tool, verb)];
  const allowed = new Set([...spec.options, ...tool.common, 'help', 'version']);
  for (const t of tokens) {
    if (t.kind !== 'option' || allowed.has(t.name)) continue;
    const hint = suggest(t.name, spec.options);
    throw new UsageError('E_USAGE', `${verbName(tool, verb)} does not take ${t.rawName}${hint ? `; did you mean --${hint}?` : ''} (see '${tool.prog} ${verb} --help')`);
  }
  return { kind: 'run', verb, values: values as Values, positionals };
}

/** The verb as the user names it in messages: `sa manual` rather than `sa`. */
function verbName(tool: ToolSpec, verb: string): string {
  return tool.verbs[verb].usage.split(' [')[0].split(' ').filter((w) => /^[a-z][a-z-]*$/.test(w)).join(' ');
}

/** `verb` if the tool has it, else E_USAGE: unknown command, with the nearest verb when one is close. */
function knownVerb(tool: ToolSpec, verb: string): string {
  if (Object.hasOwn(tool.verbs, verb)) return verb;
  const hint = suggest(verb, Object.keys(tool.verbs));
  throw new UsageError('E_USAGE', `unknown command '${verb}'; ${hint ? `did you mean '${hint}'? ` : ''}run '${tool.prog} --help' for the list`);
}

/** parseArgs's "Unknown option '--x'" as one line with a suggestion; null for any other error. */
function unknownOption(tool: ToolSpec, argv: string[], e: unknown): UsageError | null {
  if ((e as { code?: string } | null)?.code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return null;
  const m = /Unknown option '(-{1,2})([^'=]*)/.exec((e as Error).message);
  if (!m) return null;
  const verb = argv.find((a) => !a.startsWith('-') && Object.hasOwn(tool.verbs, a));
  const names = verb ? [...tool.verbs[verb].options, ...tool.common] : Object.keys(tool.options);
  const hint = m[1] === '--' ? suggest(m[2], names) : null;
  const see = verb ? `${tool.prog} ${verb} --help` : `${tool.prog} --help`;
  return new UsageError('E_USAGE', `Unknown option '${m[1]}${m[2]}'${hint ? `; did you mean --${hint}?` : ''} (see '${see}')`);
}

/**
 * The candidate nearest to `word`: one it is a prefix of (when that one is unique), else the nearest by edit
 * distance (optimal string alignment: a swap of two letters counts once) within a third of the word's length
 * (at least 1, at most 3). Null when nothing is that close.
 */
export function suggest(word: string, candidates: readonly string[]): string | null {
  if (word.length === 0) return null;
  const prefixed = candidates.filter((c) => c.startsWith(word));
  if (word.length >= 3 && prefixed.length === 1) return prefixed[0];
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | null = null;
  let bestD = limit + 1;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best;
}

export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** `--name ARG` (with `-s, ` before it for a short form), as help and usage lines show an option. */
function flag(name: string, o: OptionSpec): string {
  return `${o.short ? `-${o.short}, ` : ''}--${name}${o.arg ? ` ${o.arg}` : ''}`;
}

/** `text` in lines of at most `width` columns, the first indented by `first`, the others by `rest` spaces. */
export function wrap(text: string, width: number, first = 0, rest = first): string[] {
  const out: string[] = [];
  let line = ' '.repeat(first);
  let empty = true;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (!empty && line.length + 1 + word.length > width) {
      out.push(line);
      line = ' '.repeat(rest);
      empty = true;
    }
    line += (empty ? '' : ' ') + word;
    empty = false;
  }
  if (!empty) out.push(line);
  return out;
}

/** An option table: flags in a column of `col`, their help beside it (or below a flag too long for it). */
function optionLines(names: readonly string[], options: Readonly<Record<string, OptionSpec>>, col = 26): string[] {
  const out: string[] = [];
  for (const name of names) {
    const o = options[name] ?? BUILTIN[name];
    const f = `  ${flag(name, o)}`;
    if (f.length < col - 1) {
      const help = wrap(o.help, HELP_WIDTH, col, col);
      out.push(f.padEnd(col) + help[0].trimStart(), ...help.slice(1));
    } else out.push(f, ...wrap(o.help, HELP_WIDTH, col, col));
  }
  return out;
}

/** `prog VERB --help`: usage line, what it does, its own options, the common ones by name, examples. */
export function verbHelp(tool: ToolSpec, verb: string): string {
  const v = tool.verbs[verb];
  const lines = [...wrap(`Usage: ${tool.prog} ${v.usage}`, HELP_WIDTH, 0, 8), '', ...wrap(v.about, HELP_WIDTH, 2, 2), ''];
  if (v.options.length) lines.push('Options:', ...optionLines(v.options, tool.options), '');
  const common = [...tool.common.map((n) => flag(n, tool.options[n])), '-h, --help'].join(', ');
  lines.push(...wrap(`Common options: ${common} ('${tool.prog} --help' says what they do)`, HELP_WIDTH, 0, 2), '');
  lines.push(v.examples.length > 1 ? 'Examples:' : 'Example:', ...v.examples.map((e) => `  ${tool.prog} ${e}`));
  return lines.join('\n');
}

/** `prog --help`: the verbs by group, one line each, the common options, the footer. */
export function globalHelp(tool: ToolSpec): string {
  const lines = [`Usage: ${tool.prog} VERB [ARGS] [options]     ${tool.prog} VERB --help: one verb`, ...wrap(tool.tagline, HELP_WIDTH), ''];
  for (const [title, verbs] of tool.groups) {
    lines.push(`${title}:`);
    for (const verb of verbs) {
      const v = tool.verbs[verb];
      const head = `  ${v.usage.replace(/ \[options\]$/, '')}`;
      if (head.length < 31) lines.push(head.padEnd(32) + v.summary);
      else lines.push(head, `${' '.repeat(32)}${v.summary}`);
    }
    lines.push('');
  }
  lines.push('Common options:', ...optionLines([...tool.common, 'help', 'version'], tool.options), '');
  for (const f of tool.footer) lines.push(...wrap(f, HELP_WIDTH, 0, 2));
  return lines.join('\n');
}

let version: string | null = null;

/** `prog 0.1.0 (lifeline, node v20.x)`: the version in the nearest package.json above this file. */
export function versionLine(prog: string): string {
  if (version === null) {
    version = 'unknown';
    for (let d = import.meta.dirname; ; d = dirname(d)) {
      const file = join(d, 'package.json');
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'lifeline') {
          version = pkg.version ?? 'unknown';
          break;
        }
      }
      if (dirname(d) === d) break;
    }
  }
  return `${prog} ${version} (lifeline, node ${process.version})`;
}
