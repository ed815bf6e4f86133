#!/usr/bin/env node
// npm's install step for the project itself: builds lib/native (batched UDP, lib/batch-udp.ts) with node-gyp.
// A failed build is not an install failure: the emulator and the bench then use node:dgram and say so
// (docs/CLI.md, "Batched UDP"). LIFELINE_NATIVE=0 skips the build.
// node-gyp's own output (some 30 lines of `gyp info`) is kept in lib/native/build.log and printed only when the
// build fails: a good install says one line.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const dir = resolve(import.meta.dirname, '..', 'lib', 'native');
if (process.env.LIFELINE_NATIVE === '0') {
  console.log('lifeline: LIFELINE_NATIVE=0, batched UDP not built (node:dgram is used)');
  process.exit(0);
}
if (process.platform !== 'linux') {
  console.log('lifeline: batched UDP needs Linux (recvmmsg/sendmmsg); node:dgram is used');
  process.exit(0);
}
// npm puts its own node-gyp on PATH for install scripts.
const t0 = Date.now();
const r = spawnSync('node-gyp', ['rebuild', '--directory', dir], { encoding: 'utf8', maxBuffer: 64 << 20 });
const log = join(dir, 'build.log');
try {
  mkdirSync(dir, { recursive: true });
  writeFileSync(log, `${r.stdout ?? ''}${r.stderr ?? ''}`);
} catch {
  /* a read-only checkout: the log is printed below on failure anyway */
}
if (r.status === 0) {
  console.log(`lifeline: built lib/native (batched UDP) in ${((Date.now() - t0) / 1000).toFixed(1)} s; node-gyp's log: lib/native/build.log`);
} else {
  process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  console.warn(`lifeline: building lib/native failed (${r.error?.message ?? 'exit ' + r.status}; node-gyp's output above, also in lib/native/build.log); node:dgram is used instead`);
}
process.exit(0);
