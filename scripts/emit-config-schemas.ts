/**
 * Writes the JSON Schemas of the config file and the environment beside the compiled
 * loader (dist/src/config/config-schemas.json). The loader validates with Ajv against
 * this file, so the one-shot commands start without loading TypeBox's 700 modules;
 * src/config/schema.ts stays the single definition. `npm run build` runs this script.
 */

import { writeFileSync } from 'node:fs';

import { ConfigFile, Environment } from '../src/config/schema.js';

const target = new URL('../src/config/config-schemas.json', import.meta.url);
writeFileSync(target, `${JSON.stringify({ configFile: ConfigFile, environment: Environment }, null, 2)}\n`);
