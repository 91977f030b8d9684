/**
 * Finds processes that keep a log file open for writing without taking part in the
 * locking protocol. Rewriting such a file would lose every line they write after
 * the rename, because they keep writing to the replaced inode.
 *
 * A process counts as taking part when it also has the log's lock file open, as a
 * writer that locks before each append does. The check reads /proc, so it works on
 * Linux only, and sees only the processes whose /proc entries this user may read.
 */

import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { sep } from 'node:path';

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

function isOpenForWriting(pid: string, fd: string): boolean {
  let fdinfo: string;
  try {
    fdinfo = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
  } catch {
    return false;
  }
  const match = /^flags:\s*([0-7]+)$/m.exec(fdinfo);
  return match !== null && (parseInt(match[1]!, 8) & ACCESS_MODE_MASK) !== READ_ONLY;
}

function identityKey(file: FileIdentity): string {
  return `${file.dev}:${file.ino}`;
}

/**
 * Files in `directory` that one process has open for writing, and whether it has the
 * lock file open. Links are compared as paths first, because readlink is the cheapest
 * call on /proc and most descriptors point elsewhere; only matches are stat'ed.
 */
function inspectProcess(pid: string, directory: string, lockPath: string): { written: FileIdentity[]; hasLockFile: boolean } {
  const written: FileIdentity[] = [];
  let hasLockFile = false;
  let descriptors: string[];
  try {
    descriptors = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return { written, hasLockFile };
  }

  const prefix = directory.endsWith(sep) ? directory : `${directory}${sep}`;
  for (const fd of descriptors) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target === lockPath) {
      hasLockFile = true;
      continue;
    }
    if (!target.startsWith(prefix) || !isOpenForWriting(pid, fd)) {
      continue;
    }
    try {
      // stat follows the /proc link to the open file itself.
      const info = statSync(`/proc/${pid}/fd/${fd}`);
      if (info.isFile()) {
        written.push({ dev: info.dev, ino: info.ino });
      }
    } catch {
      // The descriptor was closed meanwhile.
    }
  }
  return { written, hasLockFile };
}

/** A snapshot of the files in a log directory that processes write without holding the lock file open. */
export class OpenWriters {
  private constructor(private readonly byFile: ReadonlyMap<string, OpenWriter[]>) {}

  /**
   * Reads /proc once, with synchronous calls: thousands of tiny reads cost far less
   * without a round trip through the thread pool each. Returns an empty snapshot
   * where /proc does not exist, since the check is a Linux facility.
   */
  static scan(directory: string, lockPath: string): OpenWriters {
    const byFile = new Map<string, OpenWriter[]>();
    if (process.platform !== 'linux') {
      return new OpenWriters(byFile);
    }

    let entries: string[];
    try {
      entries = readdirSync('/proc');
    } catch {
      return new OpenWriters(byFile);
    }
    for (const pid of entries) {
      if (!/^\d+$/.test(pid)) {
        continue;
      }
      const { written, hasLockFile } = inspectProcess(pid, directory, lockPath);
      if (written.length === 0 || hasLockFile) {
        continue;
      }
      let command = '?';
      try {
        command = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        // The process ended meanwhile; its PID still names it.
      }
      for (const file of written) {
        const key = identityKey(file);
        byFile.set(key, [...(byFile.get(key) ?? []), { pid: Number(pid), command }]);
      }
    }
    return new OpenWriters(byFile);
  }

  /** A snapshot that lists no writer, for read-only callers such as stats. */
  static none(): OpenWriters {
    return new OpenWriters(new Map());
  }

  writersOf(file: FileIdentity): OpenWriter[] {
    return this.byFile.get(identityKey(file)) ?? [];
  }
}

export function describeWriters(writers: readonly OpenWriter[]): string {
  return writers.map((writer) => `PID ${writer.pid} (${writer.command})`).join(', ');
}
