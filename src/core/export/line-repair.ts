/**
 * Rewrites of single record lines that JSON.parse accepts but DuckDB's JSON reader
 * rejects: lone UTF-16 surrogate escapes (`"\ud800"`) and duplicate keys in the
 * top-level object. Shared by the staging copy and by the repair of staging files.
 */

/**
 * A JSON escape of a UTF-16 surrogate, or an escaped backslash. Used to find lone
 * surrogates: JSON.parse, and so the scanner, accepts `"\ud800"`, but DuckDB's JSON
 * parser (yyjson) rejects the whole line.
 */
const SURROGATE_ESCAPES = /\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}/g;

/**
 * Replaces each lone surrogate escape in a JSON line with `\ufffd`, the character that
 * JSON.parse followed by UTF-8 encoding gives for it. Escaped backslashes and valid
 * surrogate pairs stay. Returns null when the line has no lone surrogate.
 */
export function repairLoneSurrogates(line: Uint8Array): Buffer | null {
  // latin1 maps bytes to code units one to one, so multi-byte UTF-8 passes through untouched.
  const text = Buffer.from(line.buffer, line.byteOffset, line.length).toString('latin1');
  let repaired = false;
  const result = text.replace(SURROGATE_ESCAPES, (escape) => {
    if (escape.length !== 6) {
      return escape;
    }
    repaired = true;
    return '\\ufffd';
  });
  return repaired ? Buffer.from(result, 'latin1') : null;
}

/** True when `bytes` may contain a surrogate escape; a cheap test before the per-line repair. */
export function mayContainSurrogateEscape(bytes: Buffer): boolean {
  return bytes.includes('\\ud') || bytes.includes('\\uD');
}

/** True when the line `bytes[start, end)` contains a lone surrogate escape, which repairLoneSurrogates would replace. */
export function hasLoneSurrogate(bytes: Uint8Array, start: number, end: number): boolean {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
  for (const match of text.matchAll(SURROGATE_ESCAPES)) {
    if (match[0].length === 6) {
      return true;
    }
  }
  return false;
}

/** Counts the members of the top-level object in a JSON object text; the text must be valid JSON. */
export function countTopLevelMembers(text: string): number {
  let depth = 0;
  let inString = false;
  let members = 0;
  let empty = true;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (inString) {
      if (code === 0x5c) {
        index++;
      } else if (code === 0x22) {
        inString = false;
      }
      continue;
    }
    if (code === 0x22) {
      inString = true;
      if (depth === 1) {
        empty = false;
      }
    } else if (code === 0x7b || code === 0x5b) {
      depth++;
    } else if (code === 0x7d || code === 0x5d) {
      depth--;
    } else if (code === 0x2c && depth === 1) {
      members++;
    }
  }
  return empty ? 0 : members + 1;
}

/** Returns the line rewritten for DuckDB, or null when it needs no change. */
export function repairLineForDuckDB(line: Buffer): Buffer | null {
  let current = repairLoneSurrogates(line) ?? line;
  const text = current.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return current === line ? null : current;
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    if (Object.keys(value).length < countTopLevelMembers(text)) {
      current = Buffer.from(`${JSON.stringify(value)}\n`, 'utf8');
      current = repairLoneSurrogates(current) ?? current;
    }
  }
  return current === line ? null : current;
}

