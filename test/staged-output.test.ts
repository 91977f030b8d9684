/**
 * The rewrite's output writer on real files: direct writes from page-aligned
 * staging buffers, the page-cache fallback the kernel forces on misaligned memory,
 * and a full tmpfs.
 */

import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { open, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';

import { STAGING_BUFFER_COUNT, STAGING_BYTES, StagedOutput, allocateStagingBuffers } from '../src/core/staged-output.js';
import { directWritesOrSkip, randomSource, smallFileSystem, temporaryDirectory } from './helpers.js';

/** Returns `count` slices of random bytes and lengths, from empty up to 1.5 staging buffers, so appends cross buffer ends. */
function randomSlices(seed: number, count: number): Buffer[] {
  const random = randomSource(seed);
  return Array.from({ length: count }, () => {
    const length = random() < 0.1 ? 0 : Math.floor(random() * random() * STAGING_BYTES * 1.5);
    const slice = Buffer.allocUnsafe(length);
    for (let index = 0; index < length; index++) {
      slice[index] = Math.floor(random() * 256);
    }
    return slice;
  });
}

/** Writes `bulk` through a StagedOutput, finishes it, appends `tail` and returns the writer and the file's bytes. */
async function writeThrough(path: string, staging: readonly Uint8Array[] | null, bulk: Buffer[], tail: Buffer[]): Promise<{ output: StagedOutput; bytes: Buffer }> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    const output = await StagedOutput.open(handle, staging);
    for (const slice of bulk) {
      await output.append([slice]);
    }
    await output.finish();
    await output.append(tail);
    await output.finish();
    await handle.datasync();
    return { output, bytes: await readFile(path) };
  } finally {
    await handle.close();
  }
}

test('staged output writes every byte in order', async (t) => {
  const directory = await temporaryDirectory(t);
  const staging = allocateStagingBuffers();
  assert.ok(staging !== null, 'WebAssembly memory for the staging buffers');
  assert.equal(staging.length, STAGING_BUFFER_COUNT);
  const bulk = randomSlices(1, 24);
  const tail = randomSlices(2, 3);

  const { output, bytes } = await writeThrough(join(directory, 'out'), staging, bulk, tail);

  assert.ok(Buffer.concat([...bulk, ...tail]).equals(bytes), 'file holds the appended bytes in order');
  assert.equal(output.position, bytes.length);
  assert.ok(bytes.length > 3 * STAGING_BYTES, 'the bulk fills several staging buffers');
});

test('staged output writes directly where allowed', async (t) => {
  const directory = await temporaryDirectory(t);
  const staging = allocateStagingBuffers()!;
  if (!(await directWritesOrSkip(t, directory))) {
    return;
  }
  const bulk = randomSlices(3, 12);
  const total = bulk.reduce((sum, slice) => sum + slice.length, 0);

  const { output, bytes } = await writeThrough(join(directory, 'out'), staging, bulk, []);

  assert.ok(Buffer.concat(bulk).equals(bytes));
  // Everything but the last partial block goes directly.
  assert.equal(output.bytesWrittenDirectly, total - (total % 4096));
});

test('staged output ignores a swapped path', async (t) => {
  const directory = await temporaryDirectory(t);
  const path = join(directory, 'out');
  const movedPath = join(directory, 'moved');
  const victimPath = join(directory, 'victim');
  await writeFile(victimPath, 'victim\n');
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  t.after(() => handle.close());

  // Another process moves the file away and leaves a symlink to a victim at its path.
  await rename(path, movedPath);
  await symlink(victimPath, path);
  const output = await StagedOutput.open(handle, allocateStagingBuffers());
  const bulk = randomSlices(8, 8);
  for (const slice of bulk) {
    await output.append([slice]);
  }
  await output.finish();

  assert.equal(await readFile(victimPath, 'utf8'), 'victim\n');
  assert.ok(Buffer.concat(bulk).equals(await readFile(movedPath)));
});

test('staged output falls back on misaligned memory', async (t) => {
  const directory = await temporaryDirectory(t);
  // Offset 8 into a backing store that is at least 16-byte aligned is never block-aligned, so the kernel rejects a direct write with EINVAL.
  const misaligned = Array.from({ length: STAGING_BUFFER_COUNT }, () => new Uint8Array(new ArrayBuffer(STAGING_BYTES + 8), 8, STAGING_BYTES));
  const bulk = randomSlices(4, 16);
  const tail = randomSlices(5, 2);

  const { output, bytes } = await writeThrough(join(directory, 'out'), misaligned, bulk, tail);

  assert.ok(Buffer.concat([...bulk, ...tail]).equals(bytes));
  assert.equal(output.bytesWrittenDirectly, 0);
});

test('staged output without staging writes at once', async (t) => {
  const directory = await temporaryDirectory(t);
  const bulk = randomSlices(6, 6);

  const { output, bytes } = await writeThrough(join(directory, 'out'), null, bulk, randomSlices(7, 1));

  assert.equal(output.bytesWrittenDirectly, 0);
  assert.equal(output.position, bytes.length);
});

test('staged output reports a full disk', async (t) => {
  const mounted = await smallFileSystem(t, 2048);
  if (mounted === null) {
    t.skip('mounting a tmpfs needs root');
    return;
  }
  const path = join(mounted.logDirectory, 'out');
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  t.after(() => handle.close());
  const output = await StagedOutput.open(handle, allocateStagingBuffers());
  const block = Buffer.alloc(STAGING_BYTES / 2, 0x61);

  // 3 MiB into 2 MiB: some append, or the finish that waits for the last writes, must fail with ENOSPC.
  const filling = (async () => {
    for (let appended = 0; appended < 6; appended++) {
      await output.append([block]);
    }
    await output.finish();
  })();

  await assert.rejects(filling, { code: 'ENOSPC' });
  await output.close();
});
