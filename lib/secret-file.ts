/**
 * Files that hold secrets (key exports, the station daemon's credential) are readable by their owner only (0600),
 * also when they already existed with a wider mode: an existing regular file is replaced by a new 0600 file renamed
 * over it, so nobody who could read the old file, or still holds it open, sees what is written now. A path that is
 * not a regular file (a FIFO, /dev/stdout) is written in place: its mode is not ours to set.
 */
import { closeSync, lstatSync, openSync, realpathSync, renameSync, rmSync, writeFileSync, writeSync, type Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

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
