/**
 * Markdown output of the benchmark: machine and run facts, result tables, and the
 * update of bench/README.md between the markers of each section.
 */

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, release, totalmem } from 'node:os';

/** Uncommitted files that the report names. It only counts the rest. */
const MAX_LISTED_FILES = 6;

export interface RunFacts {
  date: string;
  command: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  kernel: string;
  /** Filesystem of the data directory, as `df -hT` prints it. */
  disk: string;
  commit: string;
  /** Files under src/ and scripts/ with uncommitted changes when the run started. */
  uncommitted: string[];
  pauseSeconds: number;
  runs: number;
  /** Fingerprint of the copied build that every command ran from. */
  buildFingerprint: string;
}

function commandOutput(command: string, args: readonly string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trimEnd() : '';
}

/** Collects the facts about the machine and the checkout that every section of the report states. */
export function collectRunFacts(
  projectRoot: string,
  dataDir: string,
  command: string,
  pauseSeconds: number,
  runs: number,
  buildFingerprint: string,
): RunFacts {
  const cpuInfo = readFileSync('/proc/cpuinfo', 'utf8');
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(cpuInfo)?.[1] ?? 'unknown';
  const dfLines = commandOutput('df', ['-hT', dataDir], projectRoot).split('\n');
  const [filesystem, type, size, , available, , mountPoint] = (dfLines[1] ?? '').split(/\s+/);
  const status = commandOutput('git', ['status', '--porcelain', '--', 'src', 'scripts'], projectRoot);

  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    command,
    cpus: availableParallelism(),
    cpuModel,
    memoryGiB: totalmem() / 1024 ** 3,
    node: process.version,
    kernel: release(),
    disk: `${filesystem} (${type}, ${size}, ${available} free, mounted on ${mountPoint})`,
    commit: commandOutput('git', ['rev-parse', '--short', 'HEAD'], projectRoot),
    uncommitted: status === '' ? [] : status.split('\n').map((line) => line.slice(3)),
    pauseSeconds,
    runs,
    buildFingerprint,
  };
}

export function renderRunFacts(facts: RunFacts): string {
  const shown = facts.uncommitted.slice(0, MAX_LISTED_FILES).join(', ');
  const more = facts.uncommitted.length > MAX_LISTED_FILES ? ` and ${facts.uncommitted.length - MAX_LISTED_FILES} more` : '';
  const checkout =
    facts.uncommitted.length === 0
      ? `commit ${facts.commit}, no uncommitted changes in src/ or scripts/`
      : `commit ${facts.commit} with uncommitted changes in ${facts.uncommitted.length} files under src/ or scripts/ (${shown}${more})`;
  return [
    `- Date: ${facts.date}; command: \`${facts.command}\``,
    `- Machine: ${facts.cpus} CPUs (${facts.cpuModel}), ${facts.memoryGiB.toFixed(1)} GiB RAM, Linux ${facts.kernel}, Node.js ${facts.node}`,
    `- Disk of the data: ${facts.disk}`,
    `- Code: ${checkout}; every command ran from a copy of dist/ taken at the start (dist/src fingerprint ${facts.buildFingerprint})`,
    `- Before each timed run, unless its row says otherwise: \`sync\`, a wait until other processes use under 5 % of a CPU ` +
      `and the disk moves under 2 MiB/s for 1 s, a read of the command's input files, then \`sync; sleep ${facts.pauseSeconds}\`. ` +
      `${facts.runs} run${facts.runs === 1 ? '' : 's'} per row.`,
  ].join('\n');
}

/** Renders a markdown table with the columns in `rightAligned` aligned right. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number>): string {
  const separator = header.map((_, index) => (rightAligned.has(index) ? '---:' : '---'));
  const escape = (cell: string): string => cell.replaceAll('|', '\\|');
  const lines = [header.map(escape), separator, ...rows.map((cells) => cells.map(escape))];
  return lines.map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

export function formatSeconds(seconds: number): string {
  return seconds < 10 ? seconds.toFixed(2) : seconds.toFixed(1);
}

export function formatMiB(kibibytes: number): string {
  return (kibibytes / 1024).toFixed(0);
}

/** Formats a size in bytes with the largest binary unit that keeps it at 1 or more, such as `1GiB` or `100MiB`. */
export function sizeLabel(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)}${units[unit]}`;
}

function markers(section: string): { start: string; end: string } {
  return { start: `<!-- bench:${section}:start -->`, end: `<!-- bench:${section}:end -->` };
}

/**
 * Replaces the text between the markers of `section` in the README, or appends
 * the section with its markers when the README has none.
 */
export async function updateReadme(readmePath: string, section: string, body: string): Promise<void> {
  const { start, end } = markers(section);
  const readme = await readFile(readmePath, 'utf8').catch(() => '');
  const startIndex = readme.indexOf(start);
  const endIndex = readme.indexOf(end);
  const block = `${start}\n${body.trim()}\n${end}`;
  const updated =
    startIndex >= 0 && endIndex > startIndex
      ? readme.slice(0, startIndex) + block + readme.slice(endIndex + end.length)
      : `${readme.trimEnd()}\n\n${block}\n`;
  await writeFile(readmePath, updated);
}

/** Writes one line of progress to stderr, which keeps stdout for the markdown report. */
export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}
