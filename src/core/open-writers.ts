/**
 * Finds processes that keep a log file open for writing without taking part in the
 * locking protocol. Rewriting such a file would lose every line they write after
 * the rename, because they keep writing to the replaced inode.
 *
 * A process counts as taking part when it also has the log's lock file open, as a
 * writer that locks before each append does. The check reads /proc, so it works on
 * Linux only, and sees only the processes whose /proc entries this user may read.
 */

import { readdir, readFile, stat } from 'node:fs/promises';

export interface FileIdentity {
  dev: number;
  ino: number;
}

export interface OpenWriter {
  pid: number;
  command: string;
}

/** `flags` of /proc/PID/fdinfo/FD is octal; its two low bits are the access mode. */
const ACCESS_MODE_MASK = 0o3;
const READ_ONLY = 0o0;

function sameFile(left: FileIdentity, right: FileIdentity): boolean {
  return left.ino === right.ino && left.dev === right.dev;
}

async function isOpenForWriting(pid: string, fd: string): Promise<boolean> {
  const fdinfo = await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => '');
  const match = /^flags:\s*([0-7]+)$/m.exec(fdinfo);
  return match !== null && (parseInt(match[1]!, 8) & ACCESS_MODE_MASK) !== READ_ONLY;
}

/** Files that one process has open for writing, and whether it also has the lock file open. */
async function inspectProcess(pid: string, lockFile: FileIdentity | null): Promise<{ written: FileIdentity[]; hasLockFile: boolean }> {
  const written: FileIdentity[] = [];
  let hasLockFile = false;
  const descriptors = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  for (const fd of descriptors) {
    // stat follows the /proc link to the open file itself, even after a rename.
    const target = await stat(`/proc/${pid}/fd/${fd}`).catch(() => null);
    if (target === null || !target.isFile()) {
      continue;
    }
    if (lockFile !== null && sameFile(target, lockFile)) {
      hasLockFile = true;
    } else if (await isOpenForWriting(pid, fd)) {
      written.push({ dev: target.dev, ino: target.ino });
    }
  }
  return { written, hasLockFile };
}

function identityKey(file: FileIdentity): string {
  return `${file.dev}:${file.ino}`;
}

/** A snapshot of the regular files that processes write without holding the lock file open. */
export class OpenWriters {
  private constructor(private readonly byFile: ReadonlyMap<string, OpenWriter[]>) {}

  /**
   * Reads /proc once. Returns an empty snapshot where /proc does not exist, since
   * the check is a Linux facility.
   */
  static async scan(lockFile: FileIdentity | null): Promise<OpenWriters> {
    const byFile = new Map<string, OpenWriter[]>();
    if (process.platform !== 'linux') {
      return new OpenWriters(byFile);
    }

    const entries = await readdir('/proc').catch(() => [] as string[]);
    const pids = entries.filter((entry) => /^\d+$/.test(entry));
    await Promise.all(
      pids.map(async (pid) => {
        const { written, hasLockFile } = await inspectProcess(pid, lockFile);
        if (written.length === 0 || hasLockFile) {
          return;
        }
        const command = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
        for (const file of written) {
          const key = identityKey(file);
          byFile.set(key, [...(byFile.get(key) ?? []), { pid: Number(pid), command }]);
        }
      }),
    );
    return new OpenWriters(byFile);
  }

  writersOf(file: FileIdentity): OpenWriter[] {
    return this.byFile.get(identityKey(file)) ?? [];
  }
}

export function describeWriters(writers: readonly OpenWriter[]): string {
  return writers.map((writer) => `PID ${writer.pid} (${writer.command})`).join(', ');
}
