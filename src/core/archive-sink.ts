/**
 * Archive before delete: the deleted lines of a cleanup go, byte for byte, to a
 * staging file in the archive directory, which is fsynced before each log file
 * changes. After the run the staging file becomes the archive: as it is for `jsonl`,
 * or converted by DuckDB for `parquet` and `duckdb`. A crash at any point leaves
 * each record in the log, in the staging file, or in both, never in neither. The
 * next run publishes leftover staging files as `.jsonl` archives.
 */

import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import { fsyncDirectory, writeFully } from './durable.js';
import type { DeletedLinesSink } from './file-cleanup.js';
import type { Logger } from './logger.js';

export const ARCHIVE_FORMATS = ['jsonl', 'parquet', 'duckdb'] as const;
export type CleanupArchiveFormat = (typeof ARCHIVE_FORMATS)[number];

const STAGING_PREFIX = '.audit-archive-';
const STAGING_SUFFIX = '.staging.jsonl';

/** File name of a run's archive: profile, run time and run id, so that names never collide. */
export function archiveName(profile: string, nowMs: number, runId: string, format: CleanupArchiveFormat): string {
  const time = new Date(nowMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const safeProfile = profile.replace(/[^A-Za-z0-9_.-]/g, '_');
  return `audit-archive-${safeProfile}-${time}-${runId.slice(0, 8)}.${format}`;
}

/** Receives deleted lines into the staging file; per file, lines of a file whose change failed are cut off again. */
export class ArchiveSink implements DeletedLinesSink {
  private position = 0;
  private fileStart = 0;
  private pending: Promise<void> = Promise.resolve();
  records = 0;

  private constructor(
    private readonly handle: FileHandle,
    readonly stagingPath: string,
  ) {}

  static async create(directory: string, runId: string): Promise<ArchiveSink> {
    await mkdir(directory, { recursive: true });
    const stagingPath = join(directory, `${STAGING_PREFIX}${runId}${STAGING_SUFFIX}`);
    const handle = await open(stagingPath, 'wx', 0o640);
    return new ArchiveSink(handle, stagingPath);
  }

  beginFile(): void {
    this.fileStart = this.position;
  }

  add(bytes: Uint8Array): void {
    // A copy, because the caller reuses its buffer before the write completes.
    const copy = Buffer.from(bytes);
    const at = this.position;
    this.position += copy.length;
    this.pending = this.pending.then(async () => {
      await writeFully(this.handle, [copy], at);
    });
    this.pending.catch(() => undefined);
  }

  /** Makes every line added so far durable. */
  async flush(): Promise<void> {
    await this.pending;
    await this.handle.datasync();
  }

  /** Keeps the file's `deletedRecords` lines when its change was committed, else cuts them off. */
  async endFile(committed: boolean, deletedRecords: number): Promise<void> {
    await this.pending;
    if (committed) {
      this.records += deletedRecords;
      return;
    }
    this.position = this.fileStart;
    await this.handle.truncate(this.fileStart);
  }

  async close(): Promise<void> {
    await this.pending.catch(() => undefined);
    await this.handle.close();
  }
}

/**
 * Publishes the staging files that a crash left in `directory` as `.jsonl` archives,
 * so that the records they hold, already deleted from the log, stay visible.
 */
export async function publishLeftoverStaging(directory: string, logger?: Logger): Promise<string[]> {
  const names = await readdir(directory).catch(() => [] as string[]);
  const published: string[] = [];
  for (const name of names) {
    if (!name.startsWith(STAGING_PREFIX) || !name.endsWith(STAGING_SUFFIX)) {
      continue;
    }
    const source = join(directory, name);
    const info = await stat(source);
    if (info.size === 0) {
      await unlink(source);
      continue;
    }
    const target = join(directory, `audit-archive-recovered-${name.slice(STAGING_PREFIX.length, -STAGING_SUFFIX.length)}.jsonl`);
    await rename(source, target);
    published.push(target);
    logger?.warn({ archive: target }, 'published the archive staging file of an interrupted cleanup');
  }
  if (published.length > 0) {
    await fsyncDirectory(directory);
  }
  return published;
}

export function newRunId(): string {
  return randomUUID();
}
