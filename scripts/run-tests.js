#!/usr/bin/env node
// Runs the compiled mocha suites and ends with the line CI reads: "N passed, N failed".
// Usage: node scripts/run-tests.js [--grep RE] [glob-or-dir ...]   (default: dist/test/**/*.test.js)
import Mocha from 'mocha';
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const args = process.argv.slice(2);
let grep;
const roots = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--grep' || args[i] === '-g') grep = args[++i];
  else roots.push(args[i]);
}
if (roots.length === 0) roots.push('dist/test');

function collect(p, out) {
  const st = statSync(p);
  if (st.isDirectory()) {
    for (const name of readdirSync(p).sort()) collect(join(p, name), out);
  } else if (p.endsWith('.test.js')) {
    out.push(resolve(p));
  }
}
const files = [];
for (const r of roots) collect(r, files);

const mocha = new Mocha({ reporter: 'spec', timeout: 20000, grep });
for (const f of files) mocha.addFile(f);
await mocha.loadFilesAsync();
const runner = mocha.run((failures) => {
  const s = runner.stats ?? { passes: 0, failures };
  const pending = s.pending ? `, ${s.pending} skipped` : '';
  console.log(`\n${s.passes} passed, ${s.failures} failed${pending}`);
  process.exitCode = failures > 0 ? 1 : 0;
  // Suites must clean up after themselves; do not let a stray handle keep CI waiting.
  setTimeout(() => process.exit(process.exitCode), 2000).unref();
});
