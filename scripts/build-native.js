#!/usr/bin/env node
// npm's install step for the project itself: builds lib/native (batched UDP, lib/batch-udp.ts) with node-gyp.
// A failed build is not an install failure: the emulator and the bench then use node:dgram and say so
// (README, "Batched UDP"). LIFELINE_NATIVE=0 skips the build.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

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
const r = spawnSync('node-gyp', ['rebuild', '--directory', dir], { stdio: 'inherit' });
if (r.status !== 0) {
  console.warn(`lifeline: building lib/native failed (${r.error?.message ?? 'exit ' + r.status}); node:dgram is used instead`);
}
process.exit(0);
