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
  throw new Error('no bundle to record a code cache for, or one that does not match its build line; run scripts/bundle-cli.js');
}

const { script, codeCachePath, bundleText } = bundledCli;
process.on('exit', () => {
  writeFileSync(codeCachePath, sealCodeCache(script.createCachedData(), bundleText));
});

bundledCli.run();
