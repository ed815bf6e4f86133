/**
 * Issue 17's set-up frictions and the CLI's start-up, checked without a network: what a verb loads, the executables
 * without dist/, the native build's output, the environment variables' documentation, one spelling of enroll.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../../..');
const DIST = join(ROOT, 'dist');

/** The modules a file loads before it runs (static imports, followed), and the packages among them. */
function staticImports(file: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const walk = (f: string) => {
    if (files.has(f)) return;
    files.add(f);
    for (const m of readFileSync(f, 'utf8').matchAll(/^\s*(?:import|export)\s(?:[^;'"]*?\sfrom\s)?['"]([^'"]+)['"]/gm)) {
      const spec = m[1];
      if (spec.startsWith('.')) walk(resolve(dirname(f), spec));
      else packages.add(spec);
    }
  };
  walk(file);
  return { files, packages };
}

/** Every .ts file under a folder of the repository. */
function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('set-up and start-up (issue 17)', () => {
  it("a verb forwarded to the daemon loads no store driver, no crypto library, no prom-client (slow verbs: 0.25-0.38 s where node -e 0 took 0.10)", () => {
    for (const cli of ['mgmt-station/cli.js', 'nic-emulator/cli.js']) {
      const { files, packages } = staticImports(join(DIST, cli));
      const heavy = [...packages].filter((p) => /^(better-sqlite3|pg|@noble\/|prom-client)/.test(p));
      assert.deepEqual(heavy, [], `${cli} loads ${heavy.join(', ')} before it runs`);
      assert.ok(files.size <= 20, `${cli} loads ${files.size} modules before it runs: ${[...files].map((f) => f.slice(DIST.length + 1)).join(' ')}`);
      const deep = [...files].filter((f) => /[\\/](protocol|core|replay)[\\/]/.test(f) || (/[\\/]store[\\/]/.test(f) && !f.endsWith('store-url.js')));
      assert.deepEqual(deep, [], `${cli} loads the store, the protocol or the cores before it runs`);
    }
  });

  it("bin/*.js without dist/: one line that says to build, exit 1, no stack trace", () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeline-nodist-'));
    try {
      mkdirSync(join(dir, 'bin'));
      for (const bin of ['mgmt-station', 'nic-emulator']) {
        cpSync(join(ROOT, 'bin', `${bin}.js`), join(dir, 'bin', `${bin}.js`));
        writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
        const r = spawnSync(process.execPath, [join(dir, 'bin', `${bin}.js`), 'status'], { encoding: 'utf8', timeout: 10000 });
        assert.equal(r.status, 1, r.stderr);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, new RegExp(`^${bin}: E_SETUP: not built \\(no dist/\\); run 'npm run build' \\(or 'npm install'\\) in .*\\n$`));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('scripts/build-native.js prints one line; node-gyp\'s output only when the build fails', () => {
    let dir: string;
    before(() => {
      // A stand-in node-gyp on PATH, as npm puts its own there: 33 lines of gyp info, then the exit code asked for.
      dir = mkdtempSync(join(tmpdir(), 'lifeline-gyp-'));
      const gyp = join(dir, 'node-gyp');
      writeFileSync(gyp, '#!/bin/sh\nfor i in $(seq 1 33); do echo "gyp info it worked if it ends with ok $i"; done\necho "gyp ERR! maybe" >&2\nexit ${FAKE_GYP_EXIT:-0}\n');
      chmodSync(gyp, 0o755);
    });
    after(() => rmSync(dir, { recursive: true, force: true }));
    // The script writes lib/native/build.log; it is put back as it was.
    const run = (exit: number) => {
      const log = join(ROOT, 'lib/native/build.log');
      const before = existsSync(log) ? readFileSync(log) : null;
      try {
        return spawnSync(process.execPath, [join(ROOT, 'scripts/build-native.js')], { encoding: 'utf8', timeout: 10000, env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, FAKE_GYP_EXIT: String(exit) } });
      } finally {
        if (before) writeFileSync(log, before);
        else rmSync(log, { force: true });
      }
    };
    it('a build that works: one line', () => {
      const r = run(0);
      assert.equal(r.status, 0);
      assert.match(r.stdout, /^lifeline: built lib\/native \(batched UDP\) in [\d.]+ s; node-gyp's log: lib\/native\/build.log\n$/);
      assert.equal(r.stderr, '');
    });
    it('a build that fails: node-gyp\'s output, then one line saying node:dgram is used; the install goes on (exit 0)', () => {
      const r = run(1);
      assert.equal(r.status, 0);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /gyp info it worked if it ends with ok 33\n/);
      assert.match(r.stderr, /\nlifeline: building lib\/native failed \(exit 1; .*\); node:dgram is used instead\n$/);
    });
    it('LIFELINE_NATIVE=0: one line, nothing built', () => {
      const r = spawnSync(process.execPath, [join(ROOT, 'scripts/build-native.js')], { encoding: 'utf8', env: { ...process.env, LIFELINE_NATIVE: '0' } });
      assert.equal(r.stdout, 'lifeline: LIFELINE_NATIVE=0, batched UDP not built (node:dgram is used)\n');
    });
  });

  it('npm install builds dist/ (prepare), and npm start / npm test build only what changed (scripts/build.js)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.prepare, 'node scripts/build.js --prepare');
    for (const s of ['pretest', 'prestart', 'predemo', 'prebench', 'presim']) assert.equal(pkg.scripts[s], 'node scripts/build.js', s);
    // dist/ is up to date here (the tests run from it): nothing is built and nothing is said.
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/build.js')], { encoding: 'utf8', timeout: 20000 });
    assert.deepEqual([r.status, r.stdout, r.stderr], [0, '', '']);
  });

  it('every LIFELINE_* environment variable the code reads is documented in docs/CLI.md', () => {
    const doc = readFileSync(join(ROOT, 'docs/CLI.md'), 'utf8');
    const used = new Set<string>();
    for (const dir of ['mgmt-station', 'nic-emulator', 'lib', 'scripts', 'bench', 'sim', 'test', 'common', 'firmware']) {
      for (const f of sources(dir)) for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(/process\.env\.(LIFELINE_[A-Z_0-9]+)|env\[['"](LIFELINE_[A-Z_0-9]+)['"]\]/g)) used.add(m[1] ?? m[2]);
    }
    for (const f of readdirSync(join(ROOT, 'scripts')).filter((x) => x.endsWith('.js'))) {
      for (const m of readFileSync(join(ROOT, 'scripts', f), 'utf8').matchAll(/process\.env\.(LIFELINE_[A-Z_0-9]+)/g)) used.add(m[1]);
    }
    assert.ok(used.size >= 8, [...used].join(' '));
    for (const v of used) assert.match(doc, new RegExp(`\\| \`${v}\` \\|`), `${v} is read by the code but not in docs/CLI.md's table`);
  });

  it("messages spell the verb's word (enroll, enrollment), not 'enrol'", () => {
    for (const dir of ['mgmt-station', 'nic-emulator', 'lib', 'scripts', 'sim']) {
      for (const f of sources(dir)) {
        // String literals only: comments (whole-line, block and ' // ' trailing ones) may say what they like.
        const code = readFileSync(join(ROOT, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').split('\n')
          .filter((l) => !/^\s*(\/\/|\*)/.test(l)).map((l) => l.replace(/\s\/\/\s.*$/, '')).join('\n');
        for (const m of code.matchAll(/(['"`])((?:(?!\1)[^\\\n]|\\.)*)\1/g)) {
          assert.doesNotMatch(m[2], /\benrol(ment|s)?\b|\benrolment/i, `${f}: ${m[0]}`);
        }
      }
    }
  });

  it('the README is a quick start and a tour (at most 100 lines, no benchmark figures); every link in it and in docs/ resolves', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    assert.ok(readme.split('\n').length <= 100, `README.md has ${readme.split('\n').length} lines`);
    assert.match(readme, /## Quick start\n[\s\S]*npm install && npm start[\s\S]*npm test/);
    assert.doesNotMatch(readme, /\d+(\.\d+)? ?(µs|ms|KiB|req\/s)\b/, 'benchmark figures belong in docs/PERFORMANCE.md');
    for (const f of ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((x) => x.endsWith('.md')).map((x) => `docs/${x}`)]) {
      for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(m[1])) continue; // a URL
        assert.ok(existsSync(resolve(ROOT, dirname(f), m[1])), `${f} links to ${m[1]}, which does not exist`);
      }
    }
  });

  it('every dependency is imported by the product, every devDependency by the tests or the tools (dgram-as-promised: the tests\' UDP peer)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    const text = (dirs: string[]) => dirs.flatMap((d) => sources(d).map((f) => readFileSync(join(ROOT, f), 'utf8'))).join('\n');
    const product = text(['common', 'wire', 'firmware', 'protocol', 'lib', 'nic-emulator', 'mgmt-station', 'sim']);
    const tools = text(['test', 'bench', 'scripts']) + readdirSync(join(ROOT, 'scripts')).filter((x) => x.endsWith('.js')).map((x) => readFileSync(join(ROOT, 'scripts', x), 'utf8')).join('\n');
    const imported = (src: string, name: string) => src.includes(`from '${name}'`) || src.includes(`from '${name}/`) || src.includes(`import('${name}`) || src.includes(`'${name}/`) || src.includes(`.resolve('${name}')`); // a file served as is (uPlot: fleet-page-server.ts)
    for (const name of Object.keys(pkg.dependencies)) assert.ok(imported(product, name), `dependency ${name} is imported by nothing in the product`);
    for (const name of Object.keys(pkg.devDependencies).filter((n) => !n.startsWith('@types/'))) assert.ok(imported(tools, name), `devDependency ${name} is used by no test or tool`);
  });
});
