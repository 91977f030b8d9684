/**
 * Type of the validator that `npm run build` compiles from src/config/schema.ts into
 * dist/src/config/config-file-validator.js (see scripts/emit-config-schemas.ts).
 */

import type { ValidateFunction } from 'ajv';

import type { ConfigFile } from './schema.js';

export declare const validateConfigFile: ValidateFunction<ConfigFile>;
