/**
 * A cleanup process that writes its copies directly, for the crash and concurrency
 * tests. The CLI does so only for files of 64 MiB or more, too large for tests that
 * run it hundreds of times, so this process runs the engine with that threshold at 0.
 *
 * Usage: node dist/test/cleanup-child.js CONFIG_PATH
 *
 * It cleans the config's default profile at the test clock NOW and prints the JSON
 * that `cleanup --json` prints. On stderr it writes `direct_bytes N`, the bytes that
 * bypassed the page cache. It exits 0 when the cleanup succeeded, 1 otherwise.
 */

import { runCleanup } from '../src/core/cleanup.js';
import { cleanupResponse } from '../src/core/report.js';
import { NOW_MS, defaultProfile, testSettings } from './helpers.js';

const [configPath] = process.argv.slice(2);
if (configPath === undefined) {
  throw new Error('usage: cleanup-child.js CONFIG_PATH');
}

const outcome = await runCleanup({ profile: defaultProfile(testSettings(configPath)), dryRun: false, nowMs: NOW_MS, directWriteMinBytes: 0 });
process.stdout.write(`${JSON.stringify(cleanupResponse(outcome))}\n`);
process.stderr.write(`direct_bytes ${outcome.files.reduce((sum, file) => sum + (file.directBytes ?? 0), 0)}\n`);
process.exitCode = outcome.status === 'error' ? 1 : 0;
