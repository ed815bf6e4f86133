#!/usr/bin/env node
// The compiled CLI is dist/ (npm install builds it; `npm run build` does again). Without it, one line, not a stack.
import('../dist/nic-emulator/cli.js').catch((e) => {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
  const built = !/dist[\\/]nic-emulator[\\/]cli\.js/.test(String(e.message));
  process.stderr.write(built
    ? `nic-emulator: E_SETUP: ${String(e.message).split('\n')[0]}; run 'npm install' in ${new URL('..', import.meta.url).pathname}\n`
    : `nic-emulator: E_SETUP: not built (no dist/); run 'npm run build' (or 'npm install') in ${new URL('..', import.meta.url).pathname}\n`);
  process.exit(1);
});
