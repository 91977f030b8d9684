/**
 * The plain Node.js way to drop expired records, as a comparison for the benchmark:
 * readline over a read stream, JSON.parse of every line, and a write stream.
 *
 * It keeps lines that it cannot decide (not JSON, no timestamp), like our cleanup.
 * It cannot keep our bytes everywhere, because readline decodes UTF-8: invalid bytes
 * become U+FFFD, and a line ending in CR LF is written back with LF only.
 *
 * Usage: node dist/bench/node-filter.js INPUT OUTPUT CUTOFFS_JSON
 * where CUTOFFS_JSON is {"cutoffs": {"schema": "ISO instant"}, "default": "ISO instant"}.
 */

import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';

interface CutoffArgument {
  cutoffs: Record<string, string>;
  default: string;
}

async function filterFile(input: string, output: string, cutoffArgument: CutoffArgument): Promise<void> {
  const cutoffs = new Map(Object.entries(cutoffArgument.cutoffs).map(([schema, instant]) => [schema, Date.parse(instant)]));
  const defaultCutoff = Date.parse(cutoffArgument.default);

  const lines = createInterface({ input: createReadStream(input), crlfDelay: Infinity });
  const writer = createWriteStream(output);
  for await (const line of lines) {
    if (isKept(line, cutoffs, defaultCutoff)) {
      if (!writer.write(`${line}\n`)) {
        await once(writer, 'drain');
      }
    }
  }
  writer.end();
  await finished(writer);
}

function isKept(line: string, cutoffs: ReadonlyMap<string, number>, defaultCutoff: number): boolean {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return true;
  }
  if (typeof record !== 'object' || record === null) {
    return true;
  }
  const { timestamp, schema_name: schemaName } = record as { timestamp?: unknown; schema_name?: unknown };
  if (typeof timestamp !== 'string') {
    return true;
  }
  const instant = Date.parse(timestamp);
  if (Number.isNaN(instant)) {
    return true;
  }
  const cutoff = typeof schemaName === 'string' ? (cutoffs.get(schemaName) ?? defaultCutoff) : defaultCutoff;
  return instant >= cutoff;
}

const [input, output, cutoffJson] = process.argv.slice(2);
if (input === undefined || output === undefined || cutoffJson === undefined) {
  process.stderr.write('Usage: node dist/bench/node-filter.js INPUT OUTPUT CUTOFFS_JSON\n');
  process.exit(2);
}
await filterFile(input, output, JSON.parse(cutoffJson) as CutoffArgument);
