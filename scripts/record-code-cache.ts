/**
 * Runs the bundled command line with the arguments given and, when the process
 * exits, writes V8's code cache of the bundle: what the cache held when this run
 * started plus every function compiled since. scripts/bundle-cli.ts calls it once
 * per warm-up command.
 */

import { writeFileSync } from 'node:fs';

import { compileBundledCli } from '../src/launcher.cjs';

const bundledCli = compileBundledCli();
if (bundledCli === null) {
  throw new Error('no bundle to record a code cache for; run scripts/bundle-cli.js');
}

const { script, codeCachePath } = bundledCli;
if (codeCachePath === null) {
  throw new Error('the bundle has no build name on its first line; rebuild it with scripts/bundle-cli.js');
}

process.on('exit', () => {
  writeFileSync(codeCachePath, script.createCachedData());
});

bundledCli.run();
