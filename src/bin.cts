#!/usr/bin/env node
/**
 * The installed `audit-retention` command: runs the bundled command line with its
 * code cache, or dist/src/cli.js when the build made no bundle. Both behave alike;
 * the bundle only starts sooner.
 */

import { compileBundledCli } from './launcher.cjs';

const bundledCli = compileBundledCli();

if (bundledCli === null) {
  void import('./cli.js');
} else {
  bundledCli.run();
}
