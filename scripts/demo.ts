/**
 * `npm run demo`: writes a small MXCP audit log and a config under demo/, then serves
 * them on HOST:PORT (default 127.0.0.1:8080). The log's timestamps end at the current
 * time, so a dry-run cleanup reports real counts. Each run deletes demo/audit and
 * writes it again; nothing is written outside demo/.
 */

import { rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { serve } from '../src/serve.js';
import { loadSettings } from '../src/config/load.js';
import { generateAuditLog } from './generate-audit-log.js';

/** The project root; this module runs as dist/scripts/demo.js. */
const PROJECT_DIRECTORY = fileURLToPath(new URL('../../', import.meta.url));
const DEMO_DIRECTORY = join(PROJECT_DIRECTORY, 'demo');
const CONFIG_PATH = join(DEMO_DIRECTORY, 'audit-retention.yml');
/** Log path relative to the config file, as audit.path reads it. */
const LOG_PATH = 'audit/logs.jsonl';

const CONFIG_TEXT = `# Written by npm run demo, which overwrites it on each run.
# Retention per schema comes from audit/logs_schemas.jsonl:
# mxcp.endpoints 90 days, auth.events 365 days, debug.logs 30 days.
profiles:
  default:
    audit:
      enabled: true
      path: ${LOG_PATH}
`;

const LOOPBACK_HOSTS = ['127.0.0.1', '::1', 'localhost'];

/** Returns the host:port to put in the curl hint; wildcard and loopback addresses become localhost. */
function curlAddress(host: string, port: number): string {
  if (LOOPBACK_HOSTS.includes(host) || host === '0.0.0.0' || host === '::') {
    return `localhost:${port}`;
  }
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

async function writeDemoFiles(): Promise<void> {
  await rm(join(DEMO_DIRECTORY, 'audit'), { recursive: true, force: true });
  await generateAuditLog({
    out: join(DEMO_DIRECTORY, LOG_PATH),
    records: 2000,
    days: 180,
    nowUs: Date.now() * 1000,
    segments: 3,
    disorder: 0.02,
    bad: 0.01,
    seed: 1,
  });
  await writeFile(CONFIG_PATH, CONFIG_TEXT);
}

/** Starts the service as `audit-retention serve` does, with the demo config. */
async function serveDemo(): Promise<void> {
  const settings = loadSettings({ configPath: CONFIG_PATH });
  const app = await serve(settings);

  // PORT=0 picks a free port, so the hint takes the port actually bound.
  const { port } = app.server.address() as AddressInfo;
  process.stdout.write(`Try: curl -X POST '${curlAddress(settings.host, port)}/cleanup?dryRun=true'\n`);
}

async function main(): Promise<void> {
  await writeDemoFiles();
  await serveDemo();
}

main().catch((error: unknown) => {
  process.stderr.write(`Error: demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
