/**
 * A cleanup process for the crash test that writes its copies directly. The CLI does
 * so only for files of 64 MiB or more, too large for a test that kills it hundreds
 * of times, so this process runs the engine with that threshold at 0.
 *
 * Usage: node dist/test/cleanup-child.js CONFIG_PATH
 * It cleans the config's default profile at the test clock NOW and exits 0 when the
 * cleanup succeeded, 1 otherwise.
 */

import { runCleanup } from '../src/core/cleanup.js';
import { NOW_MS, defaultProfile, testSettings } from './helpers.js';

const [configPath] = process.argv.slice(2);
if (configPath === undefined) {
  throw new Error('usage: cleanup-child.js CONFIG_PATH');
}

const outcome = await runCleanup({ profile: defaultProfile(testSettings(configPath)), dryRun: false, nowMs: NOW_MS, directWriteMinBytes: 0 });
process.exitCode = outcome.status === 'error' ? 1 : 0;
