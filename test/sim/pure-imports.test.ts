/**
 * Issue 14 criterion 5: the NIC (firmware/), the protocol machines (protocol/), the shared formats (wire/), the
 * basics (common/) and the station's decisions (mgmt-station/core/) touch no clock, timer, randomness, socket or
 * file: time and randomness come in as arguments (the shells and the simulator give them). Checked on the sources:
 * what each file imports and which globals it uses. And the station imports nothing from the NIC.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const PURE = ['firmware', 'protocol', 'wire', 'common', 'mgmt-station/core'];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const p = join(dir, name);
    if (statSync(join(ROOT, p)).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The code without comments and string contents (a word in a comment or a message is not a use). */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:])\/\/.*$/gm, '$1')
    .replace(/`(?:\\[\s\S]|[^`\\])*`/g, '``')
    .replace(/"(?:\\.|[^"\\\n])*"/g, '""')
    .replace(/'(?:\\.|[^'\\\n])*'/g, (s) => (s.startsWith("'.") || s.startsWith("'node:") || s.startsWith("'@") ? s : "''"));
}

/** Every module specifier a file imports (static and dynamic), with the names it takes. */
function imports(text: string): { from: string; names: string[] }[] {
  const out: { from: string; names: string[] }[] = [];
  for (const m of text.matchAll(/import\s+(type\s+)?([\s\S]*?)\s+from\s+'([^']+)'/g)) {
    const names = m[1] ? [] : [...m[2].replace(/type\s+\w+/g, '').matchAll(/\b(\w+)\b/g)].map((x) => x[1]).filter((n) => n !== 'as');
    out.push({ from: m[3], names });
  }
  for (const m of text.matchAll(/import\(\s*'([^']+)'\s*\)/g)) out.push({ from: m[1], names: ['*'] });
  return out;
}

/** node:crypto's deterministic primitives; its randomness (randomBytes, generateKeyPair, webcrypto ...) is not. */
const CRYPTO_OK = new Set([
  'createHash', 'createHmac', 'createCipheriv', 'createDecipheriv', 'createSecretKey', 'createPrivateKey', 'createPublicKey',
  'diffieHellman', 'timingSafeEqual', 'hkdfSync', 'KeyObject',
]);

const FORBIDDEN_GLOBALS: [RegExp, string][] = [
  [/\bDate\.now\s*\(/, 'Date.now()'],
  [/\bnew Date\s*\(\s*\)/, 'new Date()'],
  [/\bperformance\.now\s*\(/, 'performance.now()'],
  [/\bprocess\.(hrtime|env|cpuUsage|uptime)\b/, 'process clock or environment'],
  [/\bMath\.random\s*\(/, 'Math.random()'],
  // (and the simulator's steps end when the microtask queue is empty, sim/scheduler.ts turn(): a core that queued its own
  // ticks or microtasks outside its promises could run across that end)
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask|process\.nextTick)\s*\(/, 'a timer'],
  [/\bcrypto\.(getRandomValues|randomUUID)\b/, 'Web Crypto randomness'],
  [/\bfetch\s*\(/, 'the network'],
  [/\brequire\s*\(/, 'require()'],
];

describe('pure cores: no clock, timer, randomness, socket or file (issue 14 criterion 5)', () => {
  const files = PURE.flatMap(sources);

  it(`covers ${PURE.join(', ')}`, () => {
    for (const dir of PURE) assert.ok(files.some((f) => f.startsWith(dir + '/')), dir);
    assert.ok(files.length > 50, `${files.length} files`);
  });

  it('they import only each other, @noble and the deterministic part of node:crypto', () => {
    const bad: string[] = [];
    for (const f of files) {
      for (const imp of imports(readFileSync(join(ROOT, f), 'utf8'))) {
        if (imp.from.startsWith('.')) {
          const target = relative(ROOT, resolve(join(ROOT, dirname(f)), imp.from));
          const typeOnlyStore = target === 'mgmt-station/store/store.js' && imp.names.length === 0;
          if (!PURE.some((d) => target.startsWith(d + '/')) && !typeOnlyStore) bad.push(`${f}: imports ${imp.from} (${target})`);
        } else if (imp.from === 'node:crypto') {
          for (const n of imp.names) if (!CRYPTO_OK.has(n)) bad.push(`${f}: takes ${n} from node:crypto`);
        } else if (!imp.from.startsWith('@noble/')) bad.push(`${f}: imports ${imp.from}`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it('they use no clock, timer or randomness of their own', () => {
    const bad: string[] = [];
    for (const f of files) {
      const c = code(readFileSync(join(ROOT, f), 'utf8'));
      for (const [re, what] of FORBIDDEN_GLOBALS) if (re.test(c)) bad.push(`${f}: ${what}`);
    }
    assert.deepEqual(bad, []);
  });

  it('the station imports nothing from firmware/ (the NIC), and the NIC nothing from mgmt-station/', () => {
    const bad: string[] = [];
    for (const [dir, forbidden] of [['mgmt-station', 'firmware/'], ['lib', 'firmware/'], ['firmware', 'mgmt-station/']] as const) {
      for (const f of sources(dir)) {
        for (const imp of imports(readFileSync(join(ROOT, f), 'utf8'))) {
          if (!imp.from.startsWith('.')) continue;
          const target = relative(ROOT, resolve(join(ROOT, dirname(f)), imp.from));
          if (target.startsWith(forbidden)) bad.push(`${f}: imports ${target}`);
        }
      }
    }
    assert.deepEqual(bad, []);
  });

  it('the checks see what they look for (a file that breaks each rule is caught)', () => {
    const sample = `import { randomBytes } from 'node:crypto';\nimport { readFileSync } from 'node:fs';\nconst t = Date.now(); // Date.now() in a comment is fine\nsetTimeout(() => 0, 1);`;
    const imps = imports(sample);
    assert.deepEqual(imps.map((i) => i.from), ['node:crypto', 'node:fs']);
    assert.deepEqual(imps[0].names, ['randomBytes']);
    const c = code(sample);
    assert.deepEqual(FORBIDDEN_GLOBALS.filter(([re]) => re.test(c)).map(([, w]) => w), ['Date.now()', 'a timer']);
    assert.equal(FORBIDDEN_GLOBALS.some(([re]) => re.test(code('// Date.now() only here\nconst s = "Math.random()";'))), false);
  });
});
