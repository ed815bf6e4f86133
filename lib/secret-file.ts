/**
 * Files that hold secrets (EEPROM images, stores, key exports, the station daemon's credential) are readable by their
 * owner only (0600), in directories made 0700, also when they already existed with a wider mode (issue 15).
 */
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync, realpathSync, renameSync, rmSync, statSync, writeFileSync, writeSync, type Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/**
 * Write a file that holds secrets: an existing regular file is replaced by a new 0600 file renamed over it, so nobody
 * who could read the old file, or still holds it open, sees what is written now. A path that is not a regular file (a
 * FIFO, /dev/stdout) is written in place: its mode is not ours to set.
 */
export function writeSecretFile(path: string, data: string | Uint8Array): void {
  let st: Stats | null = null;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  // A symlink: the file it points to is replaced (as writeFileSync would write through it).
  let target = path;
  if (st?.isSymbolicLink()) {
    try {
      target = realpathSync(path);
      st = lstatSync(target);
    } catch {
      st = null; // a dangling link: replaced by the file
    }
  }
  if (st && !st.isFile()) {
    writeFileSync(target, data);
    return;
  }
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** The mode bits a file or directory holding secrets must not have: anything for group or others. */
const WIDER_THAN_OWNER = 0o077;

/**
 * Make a regular file that holds secrets readable by its owner only (0600, or narrower if it already is), when this
 * process owns it; a file of another user is left as it is. Returns whether the mode changed.
 */
export function restrictFileMode(path: string): boolean {
  let st: Stats;
  try {
    st = statSync(path);
  } catch {
    return false;
  }
  if (!st.isFile() || (st.mode & WIDER_THAN_OWNER) === 0 || st.uid !== process.getuid?.()) return false;
  chmodSync(path, st.mode & 0o600);
  return true;
}

/**
 * A directory for files that hold secrets (the emulator's EEPROM files): created 0700 (with any missing parents).
 * An existing one that this process owns, that is no shared sticky directory (/tmp) and that holds nothing but
 * `only` files (e.g. *.eeprom) is narrowed to 0700 as well; any other existing directory is left as it is (the files
 * in it are 0600). Returns what was done.
 */
export function makePrivateDir(path: string, only: (name: string) => boolean): 'created' | 'narrowed' | 'kept' {
  if (mkdirSync(path, { recursive: true, mode: 0o700 }) !== undefined) return 'created';
  const st = statSync(path);
  if ((st.mode & WIDER_THAN_OWNER) === 0 || (st.mode & 0o1000) !== 0 || st.uid !== process.getuid?.()) return 'kept';
  if (!readdirSync(path).every(only)) return 'kept';
  chmodSync(path, st.mode & 0o700);
  return 'narrowed';
}
