/**
 * The cluster key (DESIGN §5): 32 random bytes shared by the stations of one cluster, from a key file
 * that only its owner may read (mode 0600, like ssh refuses a group-readable private key) or from the
 * environment (LIFELINE_CLUSTER_KEY, 64 hex digits). Every key in the store is wrapped under it; a
 * station without it can neither read nor adopt an SA.
 *
 * The raw bytes stay in a private field: they never appear in logs, JSON or util.inspect output.
 * Sub-keys for separate purposes (wrapping, command-log MACs) are derived with HKDF-SHA-256 (RFC 5869).
 */
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { UsageError } from '../../common/errors.js';

export const CLUSTER_KEY_BYTES = 32;
export const CLUSTER_KEY_ENV = 'LIFELINE_CLUSTER_KEY';

export class ClusterKey {
  readonly #bytes: Uint8Array;
  /** 8 hex digits naming the key (not secret): lets the store say "wrong key" instead of "corrupt". */
  readonly id: string;
  /** Where the key came from ('file /etc/lifeline/cluster.key', 'env LIFELINE_CLUSTER_KEY'). */
  readonly source: string;

  private constructor(bytes: Uint8Array, source: string) {
    this.#bytes = Uint8Array.from(bytes);
    this.source = source;
    this.id = createHmac('sha256', this.#bytes).update('lifeline cluster key id').digest('hex').slice(0, 8);
  }

  static fromBytes(bytes: Uint8Array, source = 'bytes'): ClusterKey {
    if (!(bytes instanceof Uint8Array) || bytes.length !== CLUSTER_KEY_BYTES) {
      throw new UsageError('E_KEYFILE', `cluster key from ${source} must be ${CLUSTER_KEY_BYTES} bytes, got ${bytes?.length}`);
    }
    return new ClusterKey(bytes, source);
  }

  static fromHex(text: string, source = 'hex'): ClusterKey {
    const clean = text.trim();
    if (!/^[0-9a-fA-F]{64}$/.test(clean)) {
      throw new UsageError('E_KEYFILE', `cluster key from ${source} must be 64 hex digits (32 bytes)`);
    }
    return new ClusterKey(new Uint8Array(Buffer.from(clean, 'hex')), source);
  }

  /** A 32-byte sub-key for one purpose (HKDF-SHA-256, RFC 5869; `label` is the info string). */
  subkey(label: string): Uint8Array {
    let k = this.#subkeys.get(label);
    if (!k) this.#subkeys.set(label, (k = new Uint8Array(hkdfSync('sha256', this.#bytes, new Uint8Array(0), 'lifeline ' + label, 32))));
    return k.slice();
  }

  /** Sub-keys derived so far (a store connects once per station process, and the simulator often). */
  readonly #subkeys = new Map<string, Uint8Array>();

  toJSON(): { id: string; source: string } {
    return { id: this.id, source: this.source };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `ClusterKey { id: '${this.id}', source: '${this.source}' }`;
  }
}

/**
 * Read a key file: 64 hex digits (what createClusterKeyFile writes, surrounding whitespace allowed) or
 * 32 raw bytes. Refuses a file that group or others can read or write (E_KEYFILE).
 */
export function loadClusterKeyFile(path: string): ClusterKey {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (e) {
    throw new UsageError('E_KEYFILE', `cannot read cluster key file ${path}: ${(e as Error).message}; create one with \`umask 077; openssl rand -hex 32 > ${path}\``);
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    const m = (mode & 0o777).toString(8).padStart(4, '0');
    throw new UsageError('E_KEYFILE', `cluster key file ${path} is accessible by group or others (mode ${m}); run \`chmod 600 ${path}\``);
  }
  const raw = readFileSync(path);
  const source = 'file ' + path;
  if (raw.length === CLUSTER_KEY_BYTES && !/^[0-9a-fA-F\s]*$/.test(raw.toString('latin1'))) {
    return ClusterKey.fromBytes(new Uint8Array(raw), source);
  }
  return ClusterKey.fromHex(raw.toString('latin1'), source);
}

/** The key from env LIFELINE_CLUSTER_KEY (hex), or null if unset. */
export function clusterKeyFromEnv(env: NodeJS.ProcessEnv = process.env): ClusterKey | null {
  const v = env[CLUSTER_KEY_ENV];
  if (v === undefined || v === '') return null;
  return ClusterKey.fromHex(v, 'env ' + CLUSTER_KEY_ENV);
}

/** The key file if one is named, else the environment; E_KEYFILE if neither gives a key. */
export function loadClusterKey(opts: { file?: string; env?: NodeJS.ProcessEnv } = {}): ClusterKey {
  if (opts.file !== undefined) return loadClusterKeyFile(opts.file);
  const fromEnv = clusterKeyFromEnv(opts.env ?? process.env);
  if (fromEnv) return fromEnv;
  throw new UsageError(
    'E_KEYFILE',
    `no cluster key: pass a key file or set ${CLUSTER_KEY_ENV} to 64 hex digits (create a key file with \`umask 077; openssl rand -hex 32 > FILE\`)`,
  );
}

/**
 * Create a new key file with mode 0600 (refuses to overwrite an existing file: that would orphan every
 * key wrapped under the old one). `random` is injectable for tests.
 */
export function createClusterKeyFile(path: string, random: (n: number) => Uint8Array = (n) => new Uint8Array(randomBytes(n))): ClusterKey {
  const bytes = random(CLUSTER_KEY_BYTES);
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'EEXIST' ? 'it already exists (remove it first if you really mean to replace the cluster key)' : (e as Error).message;
    throw new UsageError('E_KEYFILE', `cannot create cluster key file ${path}: ${why}`);
  }
  try {
    writeSync(fd, Buffer.from(bytes).toString('hex') + '\n');
  } finally {
    closeSync(fd);
  }
  return ClusterKey.fromBytes(bytes, 'file ' + path);
}
