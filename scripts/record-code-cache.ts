/**
 * Runs the bundled command line with the arguments given and, when the process
 * exits, writes V8's code cache of the bundle: what the cache contained when this
 * run started plus every function compiled since. scripts/bundle-cli.ts calls it
 * once per warm-up command.
 */

import { writeFileSync } from 'node:fs';

import { compileBundledCli, sealCodeCache } from '../src/launcher.cjs';

const bundledCli = compileBundledCli();
if (bundledCli === null) {
  throw new Error('The bundle dist/cli/audit-retention.cjs is missing, older than dist/src/cli.js or does not match its build line. Run npm run build.');
}

const { script, codeCachePath, bundleHash } = bundledCli;
process.on('exit', () => {
  writeFileSync(codeCachePath, sealCodeCache(script.createCachedData(), bundleHash));
});

bundledCli.run();
