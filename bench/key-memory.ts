/**
 * Memory per AES-128-GCM key of the keyed implementation (wire/aes-gcm-keyed.ts): 5,000 keys held, V8 heap
 * + ArrayBuffers after full GCs, then the same keys after one prepare() each (its preparation buffer).
 *
 * It runs in a fresh process (`node --expose-gc dist/bench/key-memory.js`, started by firmware-cost.ts), so
 * garbage left by the bench's other figures cannot be released between two readings and be subtracted from
 * the keys' figure. And the keys stay in use after the last reading: V8 may otherwise find them dead and
 * collect them before it (in the bench process both happened: one run read -1.98 KiB per key prepared).
 * Prints the KeyMemory JSON on stdout.
 */
import { createAead } from '../wire/aead.js';
import { figure, type Figure } from './stats.js';

export interface KeyMemory { idle: Figure; prepared: Figure }

const KEYS = 5000;

function measure(gc: () => void): KeyMemory {
  const used = () => {
    for (let i = 0; i < 4; i++) gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const keys: ReturnType<typeof createAead>[] = [];
  const m0 = used();
  for (let i = 0; i < KEYS; i++) keys.push(createAead('aes-gcm-16', Uint8Array.from({ length: 16 }, (_, j) => (i + j) & 0xff), 'keyed'));
  const m1 = used();
  const nonce = new Uint8Array(12);
  for (const k of keys) k.prepare!(nonce, 48);
  const m2 = used();
  // Use the keys after the last reading: otherwise V8 may find them dead before it and collect them.
  if (keys.length !== KEYS) throw new Error('lost keys');
  const wl = `${KEYS} AES-128-GCM keys (wire/aes-gcm-keyed.ts) held in one array, in a fresh process; process.memoryUsage() heapUsed + arrayBuffers after full GCs`;
  return {
    idle: figure((m1 - m0) / KEYS / 1024, 'KiB/key', wl),
    prepared: figure((m2 - m0) / KEYS / 1024, 'KiB/key', `${wl}, after one prepare() per key (its preparation buffer)`),
  };
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('key-memory: run with node --expose-gc\n');
  process.exit(2);
}
process.stdout.write(JSON.stringify(measure(gc)) + '\n');
