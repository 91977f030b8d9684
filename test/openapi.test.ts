/** The committed OpenAPI document against the one generated from the route schemas. */

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';

import request from 'supertest';

import { buildApp } from '../src/app.js';
import { loadSettings } from '../src/config/load.js';
import { PROJECT_ROOT } from './helpers.js';

test('committed OpenAPI matches the routes', async (t) => {
  const app = await buildApp({ ...loadSettings({ builtInOnly: true }), logLevel: 'silent' });
  await app.ready();
  t.after(() => app.close());

  const committed = JSON.parse(await readFile(join(PROJECT_ROOT, 'openapi', 'openapi.json'), 'utf8'));

  // On failure, regenerate with `npm run openapi` and review the diff.
  assert.deepEqual(app.swagger(), committed);
});

test('service serves the OpenAPI document', async (t) => {
  const app = await buildApp({ ...loadSettings({ builtInOnly: true }), logLevel: 'silent' });
  await app.ready();
  t.after(() => app.close());

  const response = await request(app.server).get('/openapi.json').expect(200);

  assert.equal(response.body.openapi, '3.1.0');
  assert.ok(response.body.paths['/cleanup'].post);
});
