/**
 * Type of the validator that `npm run build` compiles from src/config/schema.ts into
 * dist/src/config/environment-validator.js (see scripts/emit-config-schemas.ts).
 */

import type { ValidateFunction } from 'ajv';

import type { Environment } from './schema.js';

/** Coerces the environment's strings to numbers and fills in defaults, in place. */
export declare const validateEnvironment: ValidateFunction<Environment>;
