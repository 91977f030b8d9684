/**
 * Deterministic generator of MXCP-format audit logs: JSON lines with the fields of
 * MXCP's audit record in MXCP's order, plus the `STEM_schemas.jsonl` file beside them.
 *
 * Lines are serialized as Python's `json.dumps(record, ensure_ascii=False)` writes
 * them, as MXCP's JSONL writer does (raw-labs/mxcp, src/mxcp/sdk/audit/backends/jsonl.py):
 * `", "` and `": "` separators, non-ASCII text as raw UTF-8. Timestamps follow Python's
 * `datetime.isoformat()`, with microseconds (left out when they are zero) and `+00:00`,
 * or `Z` with --ts-style z.
 *
 * The same options give byte-identical files on every machine, because every random
 * choice comes from a seeded sfc32 generator. Output is written in batches through
 * a WriteStream that honours back-pressure, so memory stays flat for any size.
 *
 * Usable as a command (`node dist/scripts/generate-audit-log.js --help`) and as a
 * library through `generateAuditLog`.
 */

import * as crypto from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, realpathSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { finished } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { logNames, schemasPathFor } from '../src/core/layout.js';

// ---------------------------------------------------------------------------
// Public options and summary
// ---------------------------------------------------------------------------

export type TimestampStyle = 'offset' | 'z';

export const BAD_LINE_KINDS = ['truncated', 'blank', 'invalid_utf8', 'missing_timestamp'] as const;
export type BadLineKind = (typeof BAD_LINE_KINDS)[number];

export interface GeneratorOptions {
  /** Number of lines to write, malformed lines included. Ignored when `bytes` is set. */
  records?: number;
  /** Approximate total size in bytes. The line count is estimated from a fixed sample of lines. */
  bytes?: number;
  /** Length of the time span that ends at `nowUs`, in days (fractions allowed). */
  days?: number;
  /** End of the time span in epoch microseconds. */
  nowUs?: number;
  seed?: number;
  /** Output path `DIR/STEM.jsonl`, or `-` for stdout. */
  out?: string;
  /** Number of files `STEM-YYYYmmddTHHMMSS.jsonl`. With 1, the log is written to `out` itself. */
  segments?: number;
  /** Fraction of records stamped 1 ms to 2 s before the latest in-order record. */
  disorder?: number;
  /** Fraction of lines that are malformed instead of a record. */
  bad?: number;
  timestampStyle?: TimestampStyle;
  /** Schemas file path, or null for none. Default: `STEM_schemas.jsonl` beside `out`, and none for stdout. */
  schemasPath?: string | null;
  /** Called after each file is closed, with its path, size in bytes and line count. */
  onFileWritten?: (path: string, bytes: number, lines: number) => void;
}

/** Expected effect of the schemas file's retention at `now`, for one schema. */
export interface SchemaRetentionSummary {
  retention_days: number;
  /** Records before this instant are expired. */
  cutoff: string;
  records: number;
  expired: number;
}

/** Summary of a generated log. The manifest file is this object as JSON, with snake_case keys like the service's JSON. */
export interface GenerationSummary {
  files: string[];
  schemas_file: string | null;
  bytes: number;
  /** Lines written, malformed lines included. */
  lines: number;
  /** Well-formed records, disordered ones included. */
  records: number;
  bad_lines: Record<BadLineKind, number>;
  disordered_records: number;
  /** Well-formed records by schema name. */
  per_schema: Record<string, number>;
  now: string;
  days: number;
  seed: number;
  /**
   * Per-schema counts under the schemas file's retention at `now`. A record counts as
   * expired when its instant is strictly before `now - retention_days * 86400 s`,
   * which is the service's rule when `now` is a whole millisecond.
   */
  retention: Record<string, SchemaRetentionSummary>;
}

/** End of the time span when none is given; fixed so that default runs are reproducible. */
export const DEFAULT_NOW = '2026-08-01T12:00:00+00:00';

const DEFAULT_RECORDS = 1000;
const DEFAULT_DAYS = 180;
const DEFAULT_SEED = 1;

const US_PER_MS = 1000;
const US_PER_SECOND = 1_000_000;
const US_PER_HOUR = 3600 * US_PER_SECOND;
const US_PER_DAY = 24 * US_PER_HOUR;

/** Latest instant the four-digit years of isoformat() can express, 9999-12-31T23:59:59.999999, in µs. */
const MAX_INSTANT_US = 253_402_300_800 * US_PER_SECOND - 1;

// ---------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------

/**
 * sfc32, the small fast counting generator from Chris Doty-Humphrey's PractRand: 128 bits
 * of state and only 32-bit integer operations, so every JavaScript engine gives the same
 * sequence. The state comes from SHA-256 of a label, so each stream of a run is separate.
 */
class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(label: string) {
    const digest = crypto.createHash('sha256').update(label).digest();
    this.a = digest.readInt32LE(0);
    this.b = digest.readInt32LE(4);
    this.c = digest.readInt32LE(8);
    this.d = digest.readInt32LE(12);
    for (let index = 0; index < 15; index++) {
      this.nextUint32();
    }
  }

  nextUint32(): number {
    const sum = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + sum) | 0;
    return sum >>> 0;
  }

  /** Returns a float in [0, 1) with 32 random bits. */
  float(): number {
    return this.nextUint32() / 4_294_967_296;
  }

  /** Returns an integer in [low, high], both included. */
  integer(low: number, high: number): number {
    return low + Math.floor(this.float() * (high - low + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)]!;
  }

  /** Returns `count` distinct items in random order (a partial Fisher-Yates shuffle of a copy). */
  sample<T>(items: readonly T[], count: number): T[] {
    const copy = items.slice();
    const size = Math.min(count, copy.length);
    for (let index = 0; index < size; index++) {
      const other = index + Math.floor(this.float() * (copy.length - index));
      [copy[index], copy[other]] = [copy[other]!, copy[index]!];
    }
    return copy.slice(0, size);
  }

  /** Returns a standard normal variate (Box-Muller). */
  normal(): number {
    const u = 1 - this.float();
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

// ---------------------------------------------------------------------------
// Python-compatible JSON
// ---------------------------------------------------------------------------

/** A number that Python stores as a float, so it prints as `12.0`, never as `12`. */
class PythonFloat {
  constructor(readonly value: number) {}
}

type PythonJson = null | boolean | number | string | PythonFloat | PythonJson[] | { [key: string]: PythonJson };

/**
 * Serializes like Python's `json.dumps(value, ensure_ascii=False)`. JSON.stringify
 * escapes strings the same way for the text used here: quote, backslash and control
 * characters are escaped, everything else is kept as it is.
 */
function toPythonJson(value: PythonJson): string {
  if (value === null) {
    return 'null';
  }
  if (typeof value === 'string') {
    return JSON.stringify(value);
  }
  if (typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  if (value instanceof PythonFloat) {
    return Number.isInteger(value.value) ? `${value.value}.0` : String(value.value);
  }
  if (Array.isArray(value)) {
    return `[${value.map(toPythonJson).join(', ')}]`;
  }
  const members = Object.entries(value).map(([key, member]) => `${JSON.stringify(key)}: ${toPythonJson(member)}`);
  return `{${members.join(', ')}}`;
}

function roundToCents(value: number): PythonFloat {
  return new PythonFloat(Math.round(value * 100) / 100);
}

// ---------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------

interface SchemaDefinition {
  schema_name: string;
  version: number;
  description: string;
  retention_days: number;
  evidence_level: string;
  extract_fields: string[];
  require_signature: boolean;
  created_by: string;
  active: boolean;
  indexes: string[];
  fields: { name: string; type: string; required: boolean; description: string | null; sensitive: boolean }[];
  field_redactions: { field_path: string; strategy: string; options: { [key: string]: PythonJson } | null }[];
}

function field(name: string, type: string, required: boolean, sensitive = false): SchemaDefinition['fields'][number] {
  return { name, type, required, description: null, sensitive };
}

/** The three schemas, in the order of the schemas file. Record shares: 96 %, 1.5 % and 1.5 %. */
const SCHEMAS: readonly SchemaDefinition[] = [
  {
    schema_name: 'mxcp.endpoints',
    version: 2,
    // MXCP's own description of its endpoint schema.
    description: 'Audit schema for all endpoint executions (tools, resources, prompts)',
    retention_days: 90,
    evidence_level: 'detailed',
    extract_fields: ['operation_type', 'operation_name', 'operation_status', 'policy_decision'],
    require_signature: false,
    created_by: 'system',
    active: true,
    indexes: ['operation_type', 'operation_name', 'timestamp', 'user_id'],
    fields: [
      field('operation_type', 'string', true),
      field('operation_name', 'string', true),
      field('input_data', 'object', true, true),
      field('output_data', 'object', false),
      field('execution_events', 'array', false),
      field('error', 'string', false),
      field('policy_decision', 'string', false),
      field('policy_reason', 'string', false),
    ],
    field_redactions: [],
  },
  {
    schema_name: 'auth.events',
    version: 1,
    description: 'Sign-ins, token refreshes and session changes of MCP clients',
    retention_days: 365,
    evidence_level: 'regulatory',
    extract_fields: ['operation_name', 'operation_status'],
    require_signature: false,
    created_by: 'system',
    active: true,
    indexes: ['timestamp', 'user_id'],
    fields: [
      field('event_type', 'string', true),
      field('user_email', 'string', false, true),
      field('ip_address', 'string', false, true),
      field('success', 'boolean', true),
    ],
    field_redactions: [
      { field_path: 'user_email', strategy: 'email', options: null },
      { field_path: 'ip_address', strategy: 'partial', options: { show_last: 3 } },
    ],
  },
  {
    schema_name: 'debug.logs',
    version: 1,
    description: 'Internal traces of caches, query plans and connection pools, for troubleshooting',
    retention_days: 30,
    evidence_level: 'basic',
    extract_fields: ['operation_name'],
    require_signature: false,
    created_by: 'system',
    active: true,
    indexes: ['timestamp'],
    fields: [],
    field_redactions: [],
  },
];

const ENDPOINTS_SCHEMA = 0;
const AUTH_SCHEMA = 1;
const DEBUG_SCHEMA = 2;

/** Renders the schemas file: one definition a line, keys in the order MXCP writes them. */
function renderSchemasFile(createdAt: string): string {
  let text = '';
  for (const schema of SCHEMAS) {
    const { schema_name, version, description, retention_days, evidence_level, extract_fields, require_signature } = schema;
    const line: PythonJson = {
      schema_name,
      version,
      description,
      retention_days,
      evidence_level,
      extract_fields,
      require_signature,
      created_at: createdAt,
      created_by: schema.created_by,
      active: schema.active,
      indexes: schema.indexes,
      fields: schema.fields,
      field_redactions: schema.field_redactions,
    };
    text += `${toPythonJson(line)}\n`;
  }
  return text;
}

// ---------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------

/** Operation names with their relative frequency. */
type WeightedNames = readonly (readonly [string, number])[];

const TOOLS: WeightedNames = [
  ['get_customer', 28], ['search_orders', 20], ['run_sql', 14], ['get_invoice', 8], ['list_tables', 7],
  ['update_ticket', 6], ['create_ticket', 5], ['get_account_balance', 5], ['lookup_product', 5],
  ['track_shipment', 4], ['send_notification', 3], ['export_report', 2], ['issue_refund', 2],
  ['list_employees', 2], ['summarize_sales', 2], ['geocode_address', 1],
];
const RESOURCES: WeightedNames = [
  ['customers://{id}', 6], ['orders://recent', 4], ['catalog://products', 3], ['metrics://daily', 2], ['runbooks://{id}', 1],
];
const PROMPTS: WeightedNames = [['summarize_account', 4], ['draft_reply', 3], ['explain_query', 2]];
const AUTH_OPERATIONS: WeightedNames = [
  ['token.refresh', 8], ['oauth.callback', 5], ['session.create', 4], ['session.revoke', 1], ['login.failed', 1],
];
const DEBUG_OPERATIONS: WeightedNames = [['cache.miss', 5], ['duckdb.plan', 3], ['http.retry', 2], ['pool.resize', 1]];

const FIRST_NAMES = [
  'alice', 'bruno', 'chloé', 'dmitri', 'emma', 'françois', 'grace', 'hiroshi', 'ingrid', 'josé', 'kwame', 'léa',
  'mateo', 'nadia', 'oliver', 'priya', 'quentin', 'rosa', 'søren', 'tomás', 'ursula', 'viktor', 'wei', 'xenia',
  'yusuf', 'zoë', 'ayşe', 'björn', 'łukasz', 'anaïs',
];
const LAST_NAMES = [
  'smith', 'müller', 'garcía', 'rossi', 'novák', 'kowalczyk', 'tanaka', 'nguyen', 'johansson', 'dubois',
  'öztürk', 'silva', 'okafor', 'patel', 'østergaard', 'kim', 'fernández', 'brown', 'schäfer',
];
const CITIES = [
  'Lisboa', 'Zürich', 'München', 'São Paulo', 'København', 'Kraków', '東京', 'Москва', 'İstanbul', 'Αθήνα',
  'New York', 'Austin', 'Montréal', 'Reykjavík', 'Nairobi', '서울', 'Córdoba',
];
const STREETS = ['Bahnhofstraße', 'Rua Augusta', 'ul. Floriańska', 'Main Street', 'Calle Mayor', 'Nørrebrogade', 'Rue de Rivoli'];
const WORDS = (
  'the a of and to in for on with from order invoice customer shipment late refund account premium urgent please ' +
  'check status total amount missing duplicate charge card billing address contract renewal quarter report export ' +
  'monthly revenue region north south east west priority ticket escalate review pending approved rejected warehouse ' +
  'stock discount coupon subscription cancel upgrade delivery courier damaged return label tax vat credit note'
).split(' ');
const TABLES = ['orders', 'customers', 'invoices', 'shipments', 'products', 'tickets', 'payments', 'refunds'];
const COLUMNS = ['id', 'customer_id', 'status', 'amount', 'created_at', 'region', 'email', 'sku', 'quantity', 'notes'];
const QUOTED_COMPLAINTS = ['"charged twice"', '"package never arrived"', '"wrong size"', '"can\'t log in"', '"invoice\\receipt mismatch"'];
const USER_AGENTS = ['claude-desktop/0.11.4', 'mcp-inspector/0.16.1', 'cursor/1.4.2', 'python-httpx/0.28.1', 'vscode-copilot/1.301'];

const INPUT_POLICIES = ['input:require_authenticated', 'input:require_role_admin', 'input:deny_guest', 'input:tenant_isolation', 'input:rate_limit'];
const OUTPUT_POLICIES = ['output:mask_ssn', 'output:mask_email', 'output:drop_salary', 'output:strip_internal_notes'];
const DENY_REASONS = [
  'Admin role required',
  'Guest users may not read customer records',
  'Caller tenant does not own the requested resource',
  'Rate limit of 120 requests per minute exceeded',
  'Salary data is restricted to HR',
];
const WARN_REASONS = ['Result set larger than 10000 rows', 'Query reads PII columns', 'Endpoint version is deprecated'];
const ERROR_MESSAGES = [
  'Catalog Error: Table with name orders_2019 does not exist!',
  'Binder Error: Referenced column "custmer_id" not found in FROM clause!',
  'Parser Error: syntax error at or near "FORM"',
  'TimeoutError: https://api.example.com/v2/orders did not respond within 30000 ms',
  "ValueError: invalid literal for int() with base 10: 'abc'",
  'HTTPStatusError: 503 Service Unavailable from https://crm.internal/api/contacts',
  "Input validation failed: 'limit' must be less than or equal to 1000",
  'ConnectionRefusedError: [Errno 111] Connection refused',
  'Output validation failed: expected object, got array',
  "PermissionError: [Errno 13] Permission denied: 'C:\\\\exports\\\\q2.csv'",
];
const EXTERNAL_TARGETS = ['duckdb', 'https://api.example.com/v2', 'https://crm.internal/api', 'postgres://reporting', 's3://exports-bucket'];

/** Byte sequences that are not UTF-8: a Latin-1 ü, a byte order mark in UTF-16, a cut two-byte sequence, an encoded surrogate, an overlong slash. */
const INVALID_UTF8_SEQUENCES = [[0xfc], [0xff, 0xfe], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0xaf]].map((bytes) => Buffer.from(bytes));

// ---------------------------------------------------------------------------
// Pools of pre-rendered JSON, built once per run
// ---------------------------------------------------------------------------

/** One operation name with its pre-rendered inputs. */
interface Operation {
  name: string;
  nameJson: string;
  smallInputs: string[];
  largeInputs: string[];
  /** business_context JSON by outcome, filled on first use. */
  contexts: (string | undefined)[];
}

interface Pools {
  tools: Operation[];
  resources: Operation[];
  prompts: Operation[];
  authOperations: Operation[];
  debugOperations: Operation[];
  /** JSON of each user id. */
  users: string[];
  /** User indexes repeated by popularity, so that a few users make most calls. */
  userPopularity: Uint16Array;
  sessions: string[];
  durations: Uint32Array;
  outputs: string[];
  errors: string[];
  policyLists: string[];
  denyReasons: string[];
  warnReasons: string[];
  words: (count: number) => string;
}

const SMALL_INPUTS_PER_OPERATION = 128;
const LARGE_INPUTS_PER_OPERATION = 8;
const SESSION_COUNT = 8192;
const DURATION_COUNT = 4096;

/** Expands weighted names into a table where each name appears `weight` times. */
function expandWeights(names: WeightedNames, operations: Map<string, Operation>): Operation[] {
  const table: Operation[] = [];
  for (const [name, weight] of names) {
    for (let copy = 0; copy < weight; copy++) {
      table.push(operations.get(name)!);
    }
  }
  return table;
}

function buildPools(seed: number): Pools {
  const random = new Random(`audit-log-pools:${seed}`);
  const words = (count: number): string => {
    const picked: string[] = [];
    for (let index = 0; index < count; index++) {
      picked.push(random.pick(WORDS));
    }
    return picked.join(' ');
  };
  const personEmail = (): string => `${random.pick(FIRST_NAMES)}.${random.pick(LAST_NAMES)}@example.com`;

  const operations = new Map<string, Operation>();
  const allNames = [TOOLS, RESOURCES, PROMPTS, AUTH_OPERATIONS, DEBUG_OPERATIONS].flatMap((table) => table.map(([name]) => name));
  for (const name of allNames) {
    const smallInputs: string[] = [];
    const largeInputs: string[] = [];
    for (let index = 0; index < SMALL_INPUTS_PER_OPERATION; index++) {
      smallInputs.push(toPythonJson(buildInput(name, false, random, words, personEmail)));
    }
    for (let index = 0; index < LARGE_INPUTS_PER_OPERATION; index++) {
      largeInputs.push(toPythonJson(buildInput(name, true, random, words, personEmail)));
    }
    operations.set(name, { name, nameJson: JSON.stringify(name), smallInputs, largeInputs, contexts: [] });
  }

  // Users: a third each of email addresses, GitHub ids and local ids.
  const users: string[] = [];
  for (let index = 0; index < 600; index++) {
    const kind = index % 3;
    const user =
      kind === 0
        ? `${FIRST_NAMES[index % FIRST_NAMES.length]!}.${LAST_NAMES[(index * 7) % LAST_NAMES.length]!}@example.com`
        : kind === 1
          ? `github|${random.integer(100_000, 99_999_999)}`
          : `user_${String(index).padStart(5, '0')}`;
    users.push(JSON.stringify(user));
  }
  const popularity: number[] = [];
  for (let index = 0; index < users.length; index++) {
    const weight = 1 + Math.floor(40 / (1 + Math.floor(index / 4)));
    for (let copy = 0; copy < weight; copy++) {
      popularity.push(index);
    }
  }

  const sessions: string[] = [];
  for (let index = 0; index < SESSION_COUNT; index++) {
    sessions.push(`"${hex32(random.nextUint32())}${hex32(random.nextUint32())}${hex32(random.nextUint32())}${hex32(random.nextUint32())}"`);
  }

  // Log-normal durations with a median of about 65 ms and a long tail.
  const durations = new Uint32Array(DURATION_COUNT);
  for (let index = 0; index < DURATION_COUNT; index++) {
    durations[index] = Math.min(600_000, Math.floor(Math.exp(4.2 + 1.1 * random.normal())) + 1);
  }

  const outputs: PythonJson[] = [];
  for (let index = 0; index < 40; index++) outputs.push({ rows: random.integer(0, 500), truncated: random.float() < 0.05 });
  for (let index = 0; index < 20; index++) outputs.push({ status: 'ok', id: random.integer(1, 1_000_000) });
  for (let index = 0; index < 20; index++) {
    outputs.push({ balance: roundToCents(random.float() * 90_500 - 500), currency: random.pick(['EUR', 'USD', 'GBP', 'CHF']) });
  }
  for (let index = 0; index < 20; index++) outputs.push({ summary: words(random.integer(5, 20)) });

  const policyLists: string[] = ['[]'];
  for (let index = 0; index < 60; index++) {
    const list = [...random.sample(INPUT_POLICIES, random.integer(1, 2)), ...random.sample(OUTPUT_POLICIES, random.integer(0, 2))];
    policyLists.push(toPythonJson(list));
  }

  return {
    tools: expandWeights(TOOLS, operations),
    resources: expandWeights(RESOURCES, operations),
    prompts: expandWeights(PROMPTS, operations),
    authOperations: expandWeights(AUTH_OPERATIONS, operations),
    debugOperations: expandWeights(DEBUG_OPERATIONS, operations),
    users,
    userPopularity: Uint16Array.from(popularity),
    sessions,
    durations,
    outputs: outputs.map(toPythonJson),
    errors: ERROR_MESSAGES.map((message) => JSON.stringify(message)),
    policyLists,
    denyReasons: DENY_REASONS.map((reason) => JSON.stringify(reason)),
    warnReasons: WARN_REASONS.map((reason) => JSON.stringify(reason)),
    words,
  };
}

function buildSql(large: boolean, random: Random, words: (count: number) => string): string {
  const columns = random.sample(COLUMNS, random.integer(2, 6)).join(', ');
  const table = random.pick(TABLES);
  let sql = `SELECT ${columns} FROM ${table} WHERE created_at >= '2026-0${random.integer(1, 7)}-01'`;
  if (large) {
    // Long reporting queries, several kilobytes with line breaks, as analysts paste them.
    const targetLength = random.integer(1000, 4000);
    while (sql.length < targetLength) {
      const regions = random.sample(CITIES, 6).map((city) => `'${city}'`).join(', ');
      sql += `\nUNION ALL SELECT ${columns} FROM ${random.pick(TABLES)}_archive WHERE region IN (${regions}) AND notes ILIKE '%${words(2)}%'`;
    }
  }
  return `${sql} LIMIT ${random.pick([10, 50, 100, 1000])}`;
}

/** Builds the `input_data` of one call of `name`; `large` gives the rare multi-kilobyte input. */
function buildInput(
  name: string,
  large: boolean,
  random: Random,
  words: (count: number) => string,
  personEmail: () => string,
): { [key: string]: PythonJson } {
  const customerId = random.integer(1, 250_000);
  let input: { [key: string]: PythonJson };

  switch (name) {
    case 'get_customer':
      input = { customer_id: customerId, include: random.sample(['orders', 'invoices', 'tickets', 'notes'], random.integer(0, 3)) };
      break;
    case 'search_orders':
      input = {
        filters: { status: random.pick(['open', 'shipped', 'cancelled', 'returned']), city: random.pick(CITIES), min_total: random.integer(0, 500) },
        page: { limit: random.pick([10, 25, 100]), offset: random.integer(0, 5) * 25 },
      };
      break;
    case 'run_sql':
    case 'explain_query':
      input = { sql: buildSql(large, random, words), max_rows: random.pick([100, 1000, 10_000]) };
      break;
    case 'list_tables':
      input = { schema: random.pick(['main', 'analytics', 'staging']) };
      break;
    case 'get_invoice':
      input = { invoice_id: `INV-2026-${String(random.integer(1, 99_999)).padStart(5, '0')}`, format: random.pick(['json', 'pdf']) };
      break;
    case 'create_ticket':
    case 'update_ticket': {
      const title = random.float() < 0.3 ? `Customer says ${random.pick(QUOTED_COMPLAINTS)}` : words(random.integer(3, 8));
      const paragraphs = large ? random.integer(20, 60) : random.integer(1, 3);
      const body: string[] = [];
      for (let index = 0; index < paragraphs; index++) {
        body.push(words(random.integer(8, 25)));
      }
      input = { title, body: body.join('\n'), priority: random.pick(['low', 'normal', 'high']), tags: random.sample(WORDS, random.integer(0, 4)) };
      if (name === 'update_ticket') {
        input = { ticket_id: random.integer(1000, 99_999), ...input };
      }
      break;
    }
    case 'get_account_balance':
      input = { account_id: customerId, currency: random.pick(['EUR', 'USD', 'GBP', 'CHF']) };
      break;
    case 'lookup_product':
      input = { sku: `SKU-${random.integer(10_000, 99_999)}`, warehouse: random.pick(CITIES) };
      break;
    case 'track_shipment':
      input = { tracking_number: `1Z${hex32(random.nextUint32()).toUpperCase()}${random.integer(10, 99)}` };
      break;
    case 'send_notification':
      input = { to: personEmail(), channel: random.pick(['email', 'sms', 'slack']), message: words(random.integer(5, 25)) };
      break;
    case 'export_report': {
      const report = random.pick(['monthly_revenue', 'churn', 'ar_aging']);
      const destination = random.float() < 0.5 ? `C:\\Reports\\2026\\${report}.xlsx` : `s3://exports-bucket/${report}/${random.integer(1, 12)}.parquet`;
      input = { report, regions: random.sample(CITIES, random.integer(1, 5)), destination };
      break;
    }
    case 'issue_refund':
      input = { order_id: customerId * 10 + random.integer(0, 9), amount: roundToCents(random.float() * 400 + 1), reason: words(random.integer(3, 10)) };
      break;
    case 'list_employees':
      input = { department: random.pick(['sales', 'support', 'finance', 'engineering']), include_salary: random.float() < 0.1 };
      break;
    case 'summarize_sales':
      input = { period: `2026-Q${random.integer(1, 3)}`, group_by: random.sample(['region', 'product', 'channel'], random.integer(1, 2)) };
      break;
    case 'geocode_address':
      input = { address: `${random.pick(STREETS)} ${random.integer(1, 200)}, ${random.pick(CITIES)}` };
      break;
    case 'customers://{id}':
    case 'runbooks://{id}':
      input = { uri: name.replace('{id}', String(customerId)) };
      break;
    case 'orders://recent':
    case 'catalog://products':
    case 'metrics://daily':
      input = { uri: name };
      break;
    case 'summarize_account':
    case 'draft_reply':
      input = {
        account_id: customerId,
        tone: random.pick(['formal', 'friendly', 'brief']),
        context: words(large ? random.integer(300, 700) : random.integer(10, 40)),
      };
      break;
    case 'oauth.callback':
      input = {
        provider: random.pick(['github', 'google', 'atlassian']),
        state: `${hex32(random.nextUint32())}${hex32(random.nextUint32())}`,
        ip_address: `10.${random.integer(0, 255)}.${random.integer(0, 255)}.${random.integer(1, 254)}`,
        success: random.float() < 0.97,
      };
      break;
    case 'token.refresh':
    case 'session.create':
    case 'session.revoke':
    case 'login.failed':
      input = {
        event_type: name.slice(0, name.indexOf('.')),
        user_email: personEmail(),
        ip_address: `192.168.${random.integer(0, 255)}.${random.integer(1, 254)}`,
        success: name !== 'login.failed',
        user_agent: random.pick(USER_AGENTS),
      };
      break;
    case 'cache.miss':
    case 'duckdb.plan':
    case 'http.retry':
    case 'pool.resize':
      input = {
        component: name.slice(0, name.indexOf('.')),
        detail: words(random.integer(4, 12)),
        counters: { hits: random.integer(0, 1000), misses: random.integer(0, 200) },
      };
      break;
    default:
      throw new Error(`Missing input shape for operation '${name}': add a case to buildInput.`);
  }

  // Large inputs without a long text of their own carry a long list of ids instead.
  const hasLongText = Object.values(input).some((value) => typeof value === 'string' && value.length > 900);
  if (large && !hasLongText) {
    const ids: number[] = [];
    const count = random.integer(150, 500);
    for (let index = 0; index < count; index++) {
      ids.push(random.integer(1, 10_000_000));
    }
    input['ids'] = ids;
  }
  return input;
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

const HEX_BYTES: string[] = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));
const TWO_DIGITS: string[] = Array.from({ length: 60 }, (_, value) => String(value).padStart(2, '0'));

function hex32(word: number): string {
  return HEX_BYTES[word >>> 24]! + HEX_BYTES[(word >>> 16) & 0xff]! + HEX_BYTES[(word >>> 8) & 0xff]! + HEX_BYTES[word & 0xff]!;
}

/** Relative traffic in one UTC hour: office hours on weekdays are busiest, nights and weekends quiet. */
function hourlyTrafficWeight(hourIndex: number): number {
  const hourOfDay = ((hourIndex % 24) + 24) % 24;
  // 1970-01-01 was a Thursday, so day 0 is weekday 3 when Monday is 0.
  const weekday = (((Math.floor(hourIndex / 24) + 3) % 7) + 7) % 7;
  let weight = 1;
  if (hourOfDay >= 8 && hourOfDay < 18) {
    weight = 5;
  } else if (hourOfDay >= 6 && hourOfDay < 22) {
    weight = 2.5;
  }
  if (weekday >= 5) {
    weight *= 0.35;
  }
  return weight;
}

/**
 * Maps a fraction u in [0, 1) to an instant of [startUs, endUs), monotone in u,
 * following the hourly traffic weight and a 50 % growth of traffic over the span.
 */
class TrafficClock {
  private readonly bucketStartUs: Float64Array;
  private readonly bucketLengthUs: Float64Array;
  /** Cumulative share of traffic at the end of each bucket, so the last entry is 1. */
  private readonly cumulative: Float64Array;

  constructor(
    readonly startUs: number,
    readonly endUs: number,
  ) {
    const firstHour = Math.floor(startUs / US_PER_HOUR);
    const lastHour = Math.floor((endUs - 1) / US_PER_HOUR);
    const count = lastHour - firstHour + 1;
    this.bucketStartUs = new Float64Array(count);
    this.bucketLengthUs = new Float64Array(count);
    this.cumulative = new Float64Array(count);

    const spanUs = endUs - startUs;
    let total = 0;
    for (let index = 0; index < count; index++) {
      const hour = firstHour + index;
      const bucketStart = Math.max(startUs, hour * US_PER_HOUR);
      const bucketEnd = Math.min(endUs, (hour + 1) * US_PER_HOUR);
      const growth = 0.8 + 0.4 * ((bucketStart + bucketEnd) / 2 - startUs) / spanUs;
      total += hourlyTrafficWeight(hour) * growth * ((bucketEnd - bucketStart) / US_PER_HOUR);
      this.bucketStartUs[index] = bucketStart;
      this.bucketLengthUs[index] = bucketEnd - bucketStart;
      this.cumulative[index] = total;
    }
    for (let index = 0; index < count; index++) {
      this.cumulative[index]! /= total;
    }
    this.cumulative[count - 1] = 1;
  }

  instantAt(u: number): number {
    const cumulative = this.cumulative;
    let low = 0;
    let high = cumulative.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (cumulative[middle]! > u) {
        high = middle;
      } else {
        low = middle + 1;
      }
    }
    const bucketLow = low === 0 ? 0 : cumulative[low - 1]!;
    const share = (u - bucketLow) / (cumulative[low]! - bucketLow);
    const instant = this.bucketStartUs[low]! + Math.floor(share * this.bucketLengthUs[low]!);
    return Math.min(this.endUs - 1, Math.max(this.startUs, instant));
  }
}

/** Formats epoch µs like Python's `datetime.isoformat()` in UTC, with the hour's text cached. */
class TimestampFormatter {
  private cachedHour = Number.NaN;
  private cachedPrefix = '';
  private readonly suffix: string;

  constructor(style: TimestampStyle) {
    this.suffix = style === 'z' ? 'Z' : '+00:00';
  }

  format(instantUs: number): string {
    const hour = Math.floor(instantUs / US_PER_HOUR);
    if (hour !== this.cachedHour) {
      this.cachedHour = hour;
      this.cachedPrefix = new Date(hour * 3_600_000).toISOString().slice(0, 14);
    }
    const withinHourUs = instantUs - hour * US_PER_HOUR;
    const seconds = Math.floor(withinHourUs / US_PER_SECOND);
    const microseconds = withinHourUs - seconds * US_PER_SECOND;
    const minute = Math.floor(seconds / 60);
    let text = `${this.cachedPrefix}${TWO_DIGITS[minute]!}:${TWO_DIGITS[seconds - minute * 60]!}`;
    // isoformat() leaves out a zero fraction.
    if (microseconds !== 0) {
      text += `.${String(microseconds).padStart(6, '0')}`;
    }
    return text + this.suffix;
  }
}

/** Formats epoch µs as `YYYYmmddTHHMMSS` in UTC, the stamp in MXCP's segment names. */
function segmentStamp(instantUs: number): string {
  const iso = new Date(Math.floor(instantUs / US_PER_MS)).toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
}

// ---------------------------------------------------------------------------
// Lines
// ---------------------------------------------------------------------------

/** SHA-256 as hex. crypto.hash is the one-shot form, added in Node 20.12; older Node gets createHash. */
const sha256Hex: (data: string | Uint8Array) => string =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'hex')
    : (data) => crypto.createHash('sha256').update(data).digest('hex');

/** Bytes of a record's end: `"prev_hash": "…", "record_hash": "…", "signature": null}` and the line feed. */
const RECORD_TAIL_BYTES = 200;

/** Index of a decision in `Operation.contexts`: none, allow, deny, warn. */
const DECISION_NONE = 0;
const DECISION_ALLOW = 1;
const DECISION_DENY = 2;
const DECISION_WARN = 3;
const DECISION_JSON = ['null', '"allow"', '"deny"', '"warn"'];

/**
 * Renders the end of a record: MXCP's tamper-evidence chain, where each record's hash
 * covers the previous record's hash followed by the record's other fields.
 */
function recordTail(previousHash: string | null, recordHash: string): string {
  const previousJson = previousHash === null ? 'null' : `"${previousHash}"`;
  return `"prev_hash": ${previousJson}, "record_hash": "${recordHash}", "signature": null}\n`;
}

/** Kind of the last line from `LineGenerator.next`. */
const LINE_RECORD = -1;

/**
 * Produces the lines of one log in order. Line i of n gets an instant at the fraction
 * (i + random) / n of the traffic, so in-order records ascend however n is split into files.
 */
class LineGenerator {
  private readonly random: Random;
  private readonly pools: Pools;
  private readonly clock: TrafficClock;
  private readonly formatter: TimestampFormatter;
  private previousHash: string | null = null;
  /** Instant of the latest in-order record, or NaN before the first one. */
  private latestInOrderUs = Number.NaN;

  /** Instant of the last line, in epoch µs. */
  lastInstantUs = 0;
  /** LINE_RECORD, or the index in BAD_LINE_KINDS of the last line's defect. */
  lastKind = LINE_RECORD;
  /** Schema index of the last line when it is a record. */
  lastSchema = ENDPOINTS_SCHEMA;
  lastDisordered = false;

  constructor(
    private readonly options: ResolvedOptions,
    pools: Pools,
  ) {
    this.random = new Random(`audit-log-lines:${options.seed}`);
    this.pools = pools;
    this.clock = new TrafficClock(options.startUs, options.nowUs);
    this.formatter = new TimestampFormatter(options.timestampStyle);
  }

  /** Appends line `index` of `total`, with its line feed, to `batch`. */
  next(index: number, total: number, batch: ByteBatch): void {
    const random = this.random;
    let instantUs = this.clock.instantAt((index + random.float()) / total);
    this.lastDisordered = false;

    if (this.options.bad > 0 && random.float() < this.options.bad) {
      this.lastInstantUs = instantUs;
      this.appendBadLine(instantUs, batch);
      return;
    }

    if (this.options.disorder > 0 && !Number.isNaN(this.latestInOrderUs) && random.float() < this.options.disorder) {
      // A concurrent writer: this record was stamped a little before the one already written.
      const earlierUs = this.latestInOrderUs - US_PER_MS - Math.floor(random.float() * (2 * US_PER_SECOND - US_PER_MS + 1));
      instantUs = Math.max(this.options.startUs, earlierUs);
      this.lastDisordered = instantUs < this.latestInOrderUs;
    }
    if (!this.lastDisordered) {
      this.latestInOrderUs = instantUs;
    }

    this.lastInstantUs = instantUs;
    this.lastKind = LINE_RECORD;
    this.appendChainedRecord(this.renderHead(instantUs, true), batch);
  }

  /**
   * Appends a record and advances the prev_hash/record_hash chain. The hash input
   * (previous hash, then head) is written into the batch and hashed in place. The head
   * is then moved back over the previous hash, so each byte is encoded only once.
   */
  private appendChainedRecord(head: string, batch: ByteBatch): void {
    const previous = this.previousHash;
    const prefixBytes = previous === null ? 0 : previous.length;
    batch.reserve(prefixBytes + head.length * MAX_UTF8_BYTES_PER_CODE_UNIT + RECORD_TAIL_BYTES);

    const buffer = batch.buffer;
    const start = batch.length;
    if (previous !== null) {
      buffer.write(previous, start, 'latin1');
    }
    const headBytes = buffer.write(head, start + prefixBytes, 'utf8');
    const recordHash = sha256Hex(buffer.subarray(start, start + prefixBytes + headBytes));
    if (prefixBytes > 0) {
      buffer.copyWithin(start, start + prefixBytes, start + prefixBytes + headBytes);
    }
    batch.length = start + headBytes;
    batch.appendString(recordTail(previous, recordHash));
    this.previousHash = recordHash;
  }

  /** Renders a whole record line without advancing the chain, as malformed lines are never part of it. */
  private renderUnchainedLine(head: string): string {
    const previous = this.previousHash;
    return head + recordTail(previous, sha256Hex(previous === null ? head : previous + head));
  }

  private appendBadLine(instantUs: number, batch: ByteBatch): void {
    const random = this.random;
    const kind = Math.floor(random.float() * BAD_LINE_KINDS.length);
    this.lastKind = kind;

    switch (BAD_LINE_KINDS[kind]!) {
      case 'blank':
        batch.appendString(random.pick(['\n', '\n', '\n', '   \n', '\t\n', '\r\n']));
        return;
      case 'truncated': {
        // A writer that died mid-line: the record is cut, and the next line starts on its own.
        const line = this.renderUnchainedLine(this.renderHead(instantUs, true));
        let length = Math.max(1, Math.floor(line.length * (0.05 + 0.9 * random.float())));
        const lastCode = line.charCodeAt(length - 1);
        if (lastCode >= 0xd800 && lastCode <= 0xdbff) {
          length--;
        }
        batch.appendString(`${line.slice(0, length)}\n`);
        return;
      }
      case 'invalid_utf8': {
        const bytes = Buffer.from(this.renderUnchainedLine(this.renderHead(instantUs, true)));
        const position = bytes.indexOf('"operation_name": "') + '"operation_name": "'.length;
        batch.appendBytes(bytes.subarray(0, position));
        batch.appendBytes(random.pick(INVALID_UTF8_SEQUENCES));
        batch.appendBytes(bytes.subarray(position));
        return;
      }
      case 'missing_timestamp':
        batch.appendString(this.renderUnchainedLine(this.renderHead(instantUs, false)));
        return;
    }
  }

  /**
   * Renders a record up to and including `"execution_events": …, `, which the hash
   * chain fields follow. With `withTimestamp` false, the timestamp member is left out.
   */
  private renderHead(instantUs: number, withTimestamp: boolean): string {
    const random = this.random;
    const pools = this.pools;

    const schemaDraw = random.float();
    let schema: number;
    let operationType: string;
    let table: Operation[];
    if (schemaDraw < 0.96) {
      schema = ENDPOINTS_SCHEMA;
      const typeDraw = random.float();
      if (typeDraw < 0.8) {
        operationType = 'tool';
        table = pools.tools;
      } else if (typeDraw < 0.92) {
        operationType = 'resource';
        table = pools.resources;
      } else {
        operationType = 'prompt';
        table = pools.prompts;
      }
    } else if (schemaDraw < 0.985) {
      schema = AUTH_SCHEMA;
      operationType = 'auth';
      table = pools.authOperations;
    } else {
      schema = DEBUG_SCHEMA;
      operationType = 'tool';
      table = pools.debugOperations;
    }
    this.lastSchema = schema;
    const operation = random.pick(table);

    const bits = random.nextUint32();
    const durationMs = pools.durations[bits & (DURATION_COUNT - 1)]!;

    // Local stdio clients have no user and one session a day. HTTP users keep a session for 3 hours.
    let callerType: string;
    let userId: string;
    let sessionId: string;
    if (((bits >>> 12) & 7) === 0 && schema !== AUTH_SCHEMA) {
      callerType = 'stdio';
      userId = 'null';
      sessionId = pools.sessions[Math.floor(instantUs / US_PER_DAY) & (SESSION_COUNT - 1)]!;
    } else {
      callerType = 'http';
      const userIndex = pools.userPopularity[(bits >>> 15) % pools.userPopularity.length]!;
      userId = pools.users[userIndex]!;
      const window = Math.floor(instantUs / (3 * US_PER_HOUR));
      sessionId = pools.sessions[(Math.imul(userIndex, 7919) + window) & (SESSION_COUNT - 1)]!;
    }

    // Policies: half of the endpoint calls go through policies, which mostly allow.
    let status = 'success';
    let error = 'null';
    let policies = '[]';
    let decision = DECISION_NONE;
    let reason = 'null';
    if (schema === ENDPOINTS_SCHEMA && random.float() < 0.5) {
      policies = pools.policyLists[1 + Math.floor(random.float() * (pools.policyLists.length - 1))]!;
      const policyDraw = random.float();
      if (policyDraw < 0.9) {
        decision = DECISION_ALLOW;
      } else if (policyDraw < 0.96) {
        decision = DECISION_DENY;
        status = 'error';
        reason = random.pick(pools.denyReasons);
        error = `"Policy enforcement failed: ${reason.slice(1)}`;
      } else {
        decision = DECISION_WARN;
        reason = random.pick(pools.warnReasons);
      }
    }
    if (status === 'success' && random.float() < 0.045) {
      status = 'error';
      error = random.pick(pools.errors);
    }

    const input = random.float() < 0.01 ? random.pick(operation.largeInputs) : random.pick(operation.smallInputs);
    const output = status === 'success' && schema === ENDPOINTS_SCHEMA && random.float() < 0.45 ? random.pick(pools.outputs) : 'null';
    const events = schema === ENDPOINTS_SCHEMA && random.float() < 0.05 ? this.executionEvents(instantUs, durationMs) : '[]';
    const context = this.businessContext(operation, schema, operationType, status, decision);

    const recordId = this.uuid4();
    const traceId = hex32(random.nextUint32()) + hex32(random.nextUint32()) + hex32(random.nextUint32()) + hex32(random.nextUint32());
    const timestamp = withTimestamp ? `"timestamp": "${this.formatter.format(instantUs)}", ` : '';
    const definition = SCHEMAS[schema]!;

    return (
      `{"schema_name": "${definition.schema_name}", "schema_version": ${definition.version}, "record_id": "${recordId}", ${timestamp}` +
      `"operation_type": "${operationType}", "operation_name": ${operation.nameJson}, "operation_status": "${status}", ` +
      `"duration_ms": ${durationMs}, "caller_type": "${callerType}", "user_id": ${userId}, "session_id": ${sessionId}, ` +
      `"trace_id": "${traceId}", "input_data": ${input}, "output_data": ${output}, "error": ${error}, ` +
      `"policies_evaluated": ${policies}, "policy_decision": ${DECISION_JSON[decision]!}, "policy_reason": ${reason}, ` +
      `"business_context": ${context}, "execution_events": ${events}, `
    );
  }

  private uuid4(): string {
    const random = this.random;
    const first = random.nextUint32();
    const second = ((random.nextUint32() & 0xffff0fff) | 0x00004000) >>> 0;
    const third = ((random.nextUint32() & 0x3fffffff) | 0x80000000) >>> 0;
    const fourth = random.nextUint32();
    const secondHex = hex32(second);
    const thirdHex = hex32(third);
    return `${hex32(first)}-${secondHex.slice(0, 4)}-${secondHex.slice(4)}-${thirdHex.slice(0, 4)}-${thirdHex.slice(4)}${hex32(fourth)}`;
  }

  /** Renders 1 to 3 calls to external systems made during the call that ended at `instantUs`. */
  private executionEvents(instantUs: number, durationMs: number): string {
    const random = this.random;
    const events: PythonJson[] = [];
    let startUs = instantUs - durationMs * US_PER_MS;
    const count = random.integer(1, 3);
    for (let index = 0; index < count; index++) {
      const eventMs = Math.floor(durationMs * random.float());
      const failed = random.float() >= 0.95;
      events.push({
        kind: 'external',
        started_at: this.formatter.format(startUs),
        duration_ms: eventMs,
        status: failed ? 'error' : 'success',
        target: random.pick(EXTERNAL_TARGETS),
        operation: random.float() < 0.6 ? 'query' : 'request',
        summary: this.pools.words(3),
        error: failed ? random.pick(ERROR_MESSAGES) : null,
        details: {},
      });
      startUs += eventMs * US_PER_MS;
    }
    return toPythonJson(events);
  }

  /** Renders `business_context`: the schema's extract_fields of this call, cached per outcome. */
  private businessContext(operation: Operation, schema: number, operationType: string, status: string, decision: number): string {
    const slot = (status === 'success' ? 0 : 4) + decision;
    const cached = operation.contexts[slot];
    if (cached !== undefined) {
      return cached;
    }
    const values: { [key: string]: PythonJson } = {
      operation_type: operationType,
      operation_name: operation.name,
      operation_status: status,
      policy_decision: decision === DECISION_NONE ? null : JSON.parse(DECISION_JSON[decision]!) as string,
    };
    const context: { [key: string]: PythonJson } = {};
    for (const name of SCHEMAS[schema]!.extract_fields) {
      context[name] = values[name]!;
    }
    const rendered = toPythonJson(context);
    operation.contexts[slot] = rendered;
    return rendered;
  }
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/** UTF-8 needs at most 3 bytes per UTF-16 code unit: 3 for a BMP character, 4 for a surrogate pair. */
const MAX_UTF8_BYTES_PER_CODE_UNIT = 3;

/** Bytes after which a batch is handed to the stream. */
const BATCH_BYTES = 1 << 20;
/** Room beyond BATCH_BYTES for the line that crosses it. A longer line makes the batch grow. */
const BATCH_HEADROOM_BYTES = 64 << 10;
/** Bytes the stream may queue before write() returns false. A queue this deep lets generation overlap with disk writes. */
const STREAM_HIGH_WATER_MARK = 8 << 20;

/** A growable byte buffer that lines are encoded into directly. */
class ByteBatch {
  buffer: Buffer;
  length = 0;

  constructor(private readonly capacity: number) {
    this.buffer = Buffer.allocUnsafe(capacity);
  }

  /** Makes room for `bytes` more bytes, copying into a larger buffer when needed. */
  reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) {
      return;
    }
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  appendString(text: string): void {
    this.reserve(text.length * MAX_UTF8_BYTES_PER_CODE_UNIT);
    this.length += this.buffer.write(text, this.length, 'utf8');
  }

  appendBytes(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** Returns the filled bytes and continues in a fresh buffer, so the returned bytes stay unchanged while queued. */
  take(): Buffer {
    const filled = this.buffer.subarray(0, this.length);
    this.buffer = Buffer.allocUnsafe(this.capacity);
    this.length = 0;
    return filled;
  }
}

/** One output file or stdout, written in batches with back-pressure. */
class BatchWriter {
  readonly batch = new ByteBatch(BATCH_BYTES + BATCH_HEADROOM_BYTES);
  private streamError: Error | null = null;
  bytes = 0;

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly ownsStream: boolean,
  ) {
    stream.on('error', (error: Error) => {
      this.streamError = error;
    });
  }

  static toFile(path: string): BatchWriter {
    return new BatchWriter(createWriteStream(path, { highWaterMark: STREAM_HIGH_WATER_MARK }), true);
  }

  static toStdout(): BatchWriter {
    return new BatchWriter(process.stdout, false);
  }

  /** Hands the batch to the stream once it contains BATCH_BYTES, and waits while the stream's queue is full. */
  async flushIfFull(): Promise<void> {
    if (this.batch.length >= BATCH_BYTES) {
      await this.flush();
    }
  }

  async close(): Promise<void> {
    await this.flush();
    this.throwStreamError();
    if (this.ownsStream) {
      this.stream.end();
      await finished(this.stream);
    }
  }

  private async flush(): Promise<void> {
    if (this.batch.length === 0) {
      return;
    }
    this.throwStreamError();
    const chunk = this.batch.take();
    this.bytes += chunk.length;
    if (!this.stream.write(chunk)) {
      // once() rejects when the stream emits 'error' instead of 'drain'.
      await once(this.stream, 'drain');
    }
  }

  private throwStreamError(): void {
    if (this.streamError !== null) {
      throw this.streamError;
    }
  }
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

interface ResolvedOptions {
  lines: number;
  startUs: number;
  nowUs: number;
  days: number;
  seed: number;
  out: string;
  segments: number;
  disorder: number;
  bad: number;
  timestampStyle: TimestampStyle;
  schemasPath: string | null;
}

/** Lines rendered to estimate the mean line size for `bytes`. The same options give the same estimate. */
const SIZE_SAMPLE_LINES = 20_000;

function checkFraction(name: string, value: number): void {
  if (!(value >= 0 && value <= 1)) {
    throw new RangeError(`Invalid ${name} ${value}: use a fraction from 0 to 1.`);
  }
}

function checkPositiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Invalid ${name} ${value}: use a whole number of at least 1.`);
  }
}

/** Validates the options and fills in defaults. When `bytes` is set, the caller estimates the line count afterwards. */
function resolveOptions(options: GeneratorOptions): Omit<ResolvedOptions, 'lines'> & { records: number | undefined; bytes: number | undefined } {
  const days = options.days ?? DEFAULT_DAYS;
  const nowUs = options.nowUs ?? parseInstant(DEFAULT_NOW);
  const seed = options.seed ?? DEFAULT_SEED;
  const out = options.out ?? '-';
  const segments = options.segments ?? 1;
  const disorder = options.disorder ?? 0;
  const bad = options.bad ?? 0;

  if (!(days > 0) || !Number.isFinite(days)) {
    throw new RangeError(`Invalid --days ${days}: use a positive number of days.`);
  }
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`Invalid --seed ${seed}: use a whole number.`);
  }
  checkPositiveInteger('--segments', segments);
  checkFraction('--disorder', disorder);
  checkFraction('--bad', bad);
  if (options.bytes !== undefined) {
    checkPositiveInteger('--bytes', options.bytes);
  } else if (options.records !== undefined) {
    checkPositiveInteger('--records', options.records);
  }
  if (segments > 1 && out === '-') {
    throw new RangeError(`Invalid --segments ${segments} with output to stdout: segments need an output path, so set --out.`);
  }

  const startUs = nowUs - Math.round(days * US_PER_DAY);
  if (!Number.isSafeInteger(nowUs) || startUs < 0 || nowUs > MAX_INSTANT_US) {
    throw new RangeError('Invalid time span: it must lie between 1970-01-01 and 9999-12-31. Check --now and --days.');
  }

  let schemasPath: string | null = null;
  if (options.schemasPath !== undefined) {
    schemasPath = options.schemasPath;
  } else if (out !== '-') {
    schemasPath = schemasPathFor(out);
  }
  return {
    records: options.records,
    bytes: options.bytes,
    startUs,
    nowUs,
    days,
    seed,
    out,
    segments,
    disorder,
    bad,
    timestampStyle: options.timestampStyle ?? 'offset',
    schemasPath,
  };
}

/** Estimates the line count that gives about `targetBytes`, from the mean size of a fixed sample. */
function estimateLineCount(targetBytes: number, options: ResolvedOptions, pools: Pools): number {
  const sampleLines = SIZE_SAMPLE_LINES;
  const generator = new LineGenerator({ ...options, lines: sampleLines }, pools);
  const batch = new ByteBatch(BATCH_HEADROOM_BYTES);
  let sampleBytes = 0;
  for (let index = 0; index < sampleLines; index++) {
    generator.next(index, sampleLines, batch);
    sampleBytes += batch.length;
    batch.length = 0;
  }
  return Math.max(1, Math.round(targetBytes / (sampleBytes / sampleLines)));
}

/**
 * Writes a log as `options` describe and returns what it wrote. Files are created
 * or overwritten, and other files in the directory are left alone, so segments of an
 * earlier run with other options stay beside the new ones.
 */
export async function generateAuditLog(options: GeneratorOptions = {}): Promise<GenerationSummary> {
  const resolved = resolveOptions(options);
  const pools = buildPools(resolved.seed);
  const lineCount =
    resolved.bytes !== undefined
      ? estimateLineCount(resolved.bytes, { ...resolved, lines: SIZE_SAMPLE_LINES }, pools)
      : (resolved.records ?? DEFAULT_RECORDS);
  const settings: ResolvedOptions = { ...resolved, lines: lineCount };
  // The size sample filled the pools' business_context caches, which contain no random state, so reuse is safe.
  const generator = new LineGenerator(settings, pools);

  const names = settings.out === '-' ? null : logNames(settings.out);
  if (names !== null) {
    await mkdir(names.directory, { recursive: true });
  }

  const cutoffsUs = SCHEMAS.map((schema) => settings.nowUs - schema.retention_days * US_PER_DAY);
  const recordsPerSchema = SCHEMAS.map(() => 0);
  const expiredPerSchema = SCHEMAS.map(() => 0);
  const badLines = Object.fromEntries(BAD_LINE_KINDS.map((kind) => [kind, 0])) as Record<BadLineKind, number>;
  let disordered = 0;
  let totalBytes = 0;
  const files: string[] = [];

  const countLine = (): void => {
    if (generator.lastKind !== LINE_RECORD) {
      badLines[BAD_LINE_KINDS[generator.lastKind]!]++;
      return;
    }
    const schema = generator.lastSchema;
    recordsPerSchema[schema]!++;
    if (generator.lastInstantUs < cutoffsUs[schema]!) {
      expiredPerSchema[schema]!++;
    }
    if (generator.lastDisordered) {
      disordered++;
    }
  };

  for (let segment = 0; segment < settings.segments; segment++) {
    const first = Math.round((segment * lineCount) / settings.segments);
    const end = Math.round(((segment + 1) * lineCount) / settings.segments);
    if (end <= first) {
      continue;
    }

    // The first line is generated on its own, because a segment's file name depends on its instant.
    const firstLine = new ByteBatch(BATCH_HEADROOM_BYTES);
    generator.next(first, lineCount, firstLine);
    countLine();
    let path = '-';
    let writer: BatchWriter;
    if (names === null) {
      writer = BatchWriter.toStdout();
    } else {
      path = settings.segments === 1 ? settings.out : segmentPath(names, generator.lastInstantUs, files);
      writer = BatchWriter.toFile(path);
    }
    writer.batch.appendBytes(firstLine.buffer.subarray(0, firstLine.length));

    for (let index = first + 1; index < end; index++) {
      generator.next(index, lineCount, writer.batch);
      countLine();
      await writer.flushIfFull();
    }

    await writer.close();
    totalBytes += writer.bytes;
    files.push(path);
    options.onFileWritten?.(path, writer.bytes, end - first);
  }

  if (settings.schemasPath !== null) {
    await mkdir(dirname(settings.schemasPath), { recursive: true });
    const createdAt = new TimestampFormatter('offset').format(Math.floor(settings.startUs / US_PER_SECOND) * US_PER_SECOND - US_PER_DAY);
    await writeFile(settings.schemasPath, renderSchemasFile(createdAt));
  }

  const isoFormatter = new TimestampFormatter('offset');
  const perSchema: Record<string, number> = {};
  const retention: Record<string, SchemaRetentionSummary> = {};
  SCHEMAS.forEach((schema, index) => {
    perSchema[schema.schema_name] = recordsPerSchema[index]!;
    retention[schema.schema_name] = {
      retention_days: schema.retention_days,
      cutoff: isoFormatter.format(cutoffsUs[index]!),
      records: recordsPerSchema[index]!,
      expired: expiredPerSchema[index]!,
    };
  });

  return {
    files,
    schemas_file: settings.schemasPath,
    bytes: totalBytes,
    lines: lineCount,
    records: recordsPerSchema.reduce((sum, count) => sum + count, 0),
    bad_lines: badLines,
    disordered_records: disordered,
    per_schema: perSchema,
    now: isoFormatter.format(settings.nowUs),
    days: settings.days,
    seed: settings.seed,
    retention,
  };
}

/** Returns `DIR/STEM-YYYYmmddTHHMMSS.jsonl` for a segment that starts at `instantUs`, with `-N` added on a clash. */
function segmentPath(names: ReturnType<typeof logNames>, instantUs: number, taken: readonly string[]): string {
  const base = `${names.stem}-${segmentStamp(instantUs)}`;
  let path = join(names.directory, `${base}${names.extension}`);
  for (let suffix = 1; taken.includes(path); suffix++) {
    path = join(names.directory, `${base}-${suffix}${names.extension}`);
  }
  return path;
}

// ---------------------------------------------------------------------------
// Argument parsing
// ---------------------------------------------------------------------------

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Parses a size such as `1GiB`, `200M`, `64k` or `5000000` into bytes. Units are powers of 1024. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (match === null) {
    throw new RangeError(`Invalid size '${text}': use bytes or a number with K, M, G or T, such as 1GiB, 200M or 5000000.`);
  }
  const bytes = Math.floor(Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]!);
  if (bytes < 1) {
    throw new RangeError(`Invalid size '${text}': it must be at least 1 byte.`);
  }
  return bytes;
}

/**
 * Parses an ISO 8601 instant into epoch µs. Accepts a date, or a date and time with
 * optional seconds, up to 9 fraction digits (kept to the microsecond) and a `Z` or
 * `±HH:MM` offset. No offset means UTC, and the word `now` gives the current time.
 */
export function parseInstant(text: string): number {
  if (text === 'now') {
    return Date.now() * US_PER_MS;
  }
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(Z|z|[+-]\d{2}:?\d{2})?$/.exec(text.trim());
  if (match === null) {
    throw new RangeError(`Invalid instant '${text}': use ISO 8601 such as 2026-08-01T12:00:00+00:00, or 'now'.`);
  }
  const [, year, month, day, hour = '0', minute = '0', second = '0', fraction = '', zone = 'Z'] = match;
  const fields = [Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second)] as const;
  const date = new Date(Date.UTC(...fields));
  date.setUTCFullYear(fields[0]);
  if (
    date.getUTCMonth() !== fields[1] || date.getUTCDate() !== fields[2] ||
    date.getUTCHours() !== fields[3] || date.getUTCMinutes() !== fields[4] || date.getUTCSeconds() !== fields[5]
  ) {
    throw new RangeError(`Invalid instant '${text}': a date or time field is out of range.`);
  }
  let offsetMinutes = 0;
  if (zone !== 'Z' && zone !== 'z') {
    const digits = zone.replace(':', '');
    offsetMinutes = (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5))) * (digits[0] === '-' ? -1 : 1);
  }
  const microseconds = Number(fraction.padEnd(6, '0').slice(0, 6));
  return (date.getTime() - offsetMinutes * 60_000) * US_PER_MS + microseconds;
}

function parseNumber(name: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) {
    throw new RangeError(`Invalid ${name} '${text}': use a number.`);
  }
  return value;
}

const USAGE = `Usage: node dist/scripts/generate-audit-log.js [options]

Writes a realistic MXCP audit log: JSON lines with MXCP's record fields, as MXCP's
JSONL writer serializes them, and the schemas file STEM_schemas.jsonl beside them.
Schemas: mxcp.endpoints v2 (retention 90 days, 96 % of records), auth.events v1
(365 days, 1.5 %) and debug.logs v1 (30 days, 1.5 %). The same options always give
the same bytes.

Options:
  --records N          Lines to write, malformed lines included (default ${DEFAULT_RECORDS}).
  --bytes SIZE         Approximate total size instead of --records: bytes, or K, M, G
                       or T (powers of 1024), such as 1GiB, 200M or 5000000.
  --days D             Length of the time span that ends at --now, in days (default ${DEFAULT_DAYS}).
  --now INSTANT        End of the time span, ISO 8601 or 'now' (default ${DEFAULT_NOW}).
  --seed N             Seed of the random choices (default ${DEFAULT_SEED}).
  --out PATH           Log path DIR/STEM.jsonl, or - for stdout (default -).
  --segments K         Split into K files DIR/STEM-YYYYmmddTHHMMSS.jsonl, each named
                       after its first line, as MXCP names rotated files (default 1).
  --disorder F         Fraction of records stamped 1 ms to 2 s before the latest
                       record already written, as concurrent writers do (default 0).
  --bad F              Fraction of malformed lines: truncated JSON, blank lines,
                       invalid UTF-8 or a record without timestamp (default 0).
  --ts-style STYLE     UTC suffix of timestamps: offset (+00:00, Python's isoformat)
                       or z (Z, pydantic's style) (default offset).
  --schemas PATH       Schemas file path (default DIR/STEM_schemas.jsonl; none with
                       --out -).
  --manifest PATH      Write a JSON summary: files, line and record counts, malformed
                       lines by kind, records per schema and expired records per
                       schema at --now.
  --quiet              Print nothing on stderr.
  --help               Show this text.

Existing files of the same names are overwritten; other files in DIR are left alone,
so use an empty directory when you change --segments or --now.

Examples:
  node dist/scripts/generate-audit-log.js --records 10000 --out /tmp/logs/audit.jsonl
  node dist/scripts/generate-audit-log.js --bytes 1GiB --segments 20 --out /tmp/big/audit.jsonl
  node dist/scripts/generate-audit-log.js --records 500 --bad 0.05 --disorder 0.02 > small.jsonl
`;

class UsageError extends Error {}

interface CommandLine {
  generator: GeneratorOptions;
  manifestPath: string | undefined;
  quiet: boolean;
  help: boolean;
}

function parseCommandLine(argv: string[]): CommandLine {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      records: { type: 'string' },
      bytes: { type: 'string' },
      days: { type: 'string' },
      now: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      segments: { type: 'string' },
      disorder: { type: 'string' },
      bad: { type: 'string' },
      'ts-style': { type: 'string' },
      schemas: { type: 'string' },
      manifest: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument '${positionals[0]}'.`);
  }
  if (values.records !== undefined && values.bytes !== undefined) {
    throw new UsageError('Invalid options: --records and --bytes cannot be combined. Give one of them.');
  }
  const style = values['ts-style'];
  if (style !== undefined && style !== 'offset' && style !== 'z') {
    throw new UsageError(`Invalid --ts-style '${style}': use offset or z.`);
  }

  const generator: GeneratorOptions = {
    out: values.out ?? '-',
    timestampStyle: style ?? 'offset',
  };
  if (values.records !== undefined) generator.records = parseNumber('--records', values.records);
  if (values.bytes !== undefined) generator.bytes = parseSize(values.bytes);
  if (values.days !== undefined) generator.days = parseNumber('--days', values.days);
  if (values.now !== undefined) generator.nowUs = parseInstant(values.now);
  if (values.seed !== undefined) generator.seed = parseNumber('--seed', values.seed);
  if (values.segments !== undefined) generator.segments = parseNumber('--segments', values.segments);
  if (values.disorder !== undefined) generator.disorder = parseNumber('--disorder', values.disorder);
  if (values.bad !== undefined) generator.bad = parseNumber('--bad', values.bad);
  if (values.schemas !== undefined) generator.schemasPath = values.schemas;

  return { generator, manifestPath: values.manifest, quiet: values.quiet, help: values.help };
}

async function main(argv: string[]): Promise<number> {
  const commandLine = parseCommandLine(argv);
  if (commandLine.help) {
    process.stdout.write(USAGE);
    return 0;
  }

  const { generator, manifestPath, quiet } = commandLine;
  if (!quiet) {
    generator.onFileWritten = (path, bytes, lines) => process.stderr.write(`${path}: ${bytes} bytes, ${lines} lines\n`);
  }

  const startedAt = process.hrtime.bigint();
  const summary = await generateAuditLog(generator);
  const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;

  if (manifestPath !== undefined) {
    await mkdir(dirname(manifestPath), { recursive: true });
    await writeFile(manifestPath, `${JSON.stringify(summary, null, 2)}\n`);
  }
  if (!quiet) {
    const rate = seconds > 0 ? (summary.bytes / 1e6 / seconds).toFixed(1) : 'n/a';
    process.stderr.write(
      `Wrote ${summary.lines} lines (${summary.records} records), ${summary.bytes} bytes in ${seconds.toFixed(2)} s (${rate} MB/s).\n`,
    );
  }
  return 0;
}

function isMainModule(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) {
    return false;
  }
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  main(process.argv.slice(2)).then(
    (exitCode) => {
      process.exitCode = exitCode;
    },
    (error: unknown) => {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') {
        // The reader of stdout closed it, as `| head` does, which is not a failure.
        process.exitCode = 0;
        return;
      }
      if (error instanceof UsageError || code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
        process.stderr.write(`Error: ${(error as Error).message}\n\n${USAGE}`);
      } else if (error instanceof RangeError) {
        process.stderr.write(`Error: ${error.message}\n`);
      } else {
        process.stderr.write(`Error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      }
      process.exitCode = 1;
    },
  );
}
