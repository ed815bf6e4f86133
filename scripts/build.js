#!/usr/bin/env node
// Compiles the TypeScript to dist/ when a source is newer than the last build, else says nothing: `npm install` builds
// (the prepare script), and `npm start`, `npm test`, `npm run demo|bench|sim` build first only what changed since.
// `npm run build` always runs tsc. Usage: node scripts/build.js [--prepare]
//   --prepare: npm's prepare step; without TypeScript (npm install --omit=dev) it says so and leaves dist/ as it is.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const tsconfig = join(root, 'tsconfig.json');
const stamp = join(root, 'dist', '.tsbuildinfo'); // tsc's incremental state (tsconfig.json tsBuildInfoFile)
const prepare = process.argv.includes('--prepare');

/** The newest modification time of tsconfig.json and of every .ts file under the folders it includes. */
function newestSource() {
  let newest = statSync(tsconfig).mtimeMs;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of JSON.parse(readFileSync(tsconfig, 'utf8')).include) if (existsSync(join(root, d))) walk(join(root, d));
  return newest;
}

if (existsSync(stamp) && statSync(stamp).mtimeMs >= newestSource()) process.exit(0); // dist/ is up to date

let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  const msg = "lifeline: TypeScript is not installed, so dist/ is not built; run 'npm install' (with dev dependencies)";
  if (prepare) {
    console.warn(msg);
    process.exit(0);
  }
  console.error(msg);
  process.exit(1);
}
const t0 = Date.now();
const r = spawnSync(process.execPath, [tsc, '-p', tsconfig], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error(`lifeline: tsc failed (${r.error?.message ?? 'exit ' + r.status}); dist/ is not up to date`);
  process.exit(1);
}
// tsc leaves its state file alone when nothing changed: touch it, so the sources are not found newer next time.
if (existsSync(stamp)) utimesSync(stamp, new Date(), new Date());
console.log(`lifeline: compiled the TypeScript to dist/ in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
