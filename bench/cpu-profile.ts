/**
 * Self time per function from the `.cpuprofile` files that `node --cpu-prof` writes,
 * one file per thread.
 */

import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  /** Microseconds between a sample and the one before it. */
  timeDeltas: number[];
}

export interface FunctionTime {
  /** Function name, `file:line` relative to the project, as the profile names them. */
  name: string;
  location: string;
  selfMs: number;
  /** Share of the thread's sampled time, in percent. */
  share: number;
}

export interface ThreadProfile {
  file: string;
  /** `main` for the main thread, otherwise `worker N` from the thread id in the file name. */
  thread: string;
  sampledMs: number;
  top: FunctionTime[];
}

/** Reads every `.cpuprofile` in `directory` and returns the `count` functions with the most self time of each thread. */
export async function summarizeProfiles(directory: string, projectRoot: string, count: number): Promise<ThreadProfile[]> {
  const files = (await readdir(directory)).filter((name) => name.endsWith('.cpuprofile')).sort();
  const threads: ThreadProfile[] = [];
  for (const file of files) {
    const profile = JSON.parse(await readFile(join(directory, file), 'utf8')) as CpuProfile;
    // Node names the files CPU.DATE.TIME.PID.THREAD_ID.SEQUENCE.cpuprofile, and thread 0 is the main thread.
    const threadId = file.split('.')[4];
    threads.push({ file, thread: threadId === '0' ? 'main' : `worker ${threadId}`, ...topFunctions(profile, projectRoot, count) });
  }
  return threads;
}

function topFunctions(profile: CpuProfile, projectRoot: string, count: number): { sampledMs: number; top: FunctionTime[] } {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicroseconds = new Map<string, { name: string; location: string; micros: number }>();
  let totalMicroseconds = 0;

  // A sample's time is the gap to the next sample, as Chrome DevTools counts it.
  for (let index = 0; index < profile.samples.length; index++) {
    const micros = profile.timeDeltas[index + 1] ?? 0;
    const node = nodes.get(profile.samples[index]!);
    if (node === undefined) {
      continue;
    }
    const { functionName, url, lineNumber } = node.callFrame;
    const location = url === '' ? '' : `${shortenUrl(url, projectRoot)}:${lineNumber + 1}`;
    const name = functionName === '' ? '(anonymous)' : functionName;
    const key = `${name} ${location}`;
    const entry = selfMicroseconds.get(key) ?? { name, location, micros: 0 };
    entry.micros += micros;
    selfMicroseconds.set(key, entry);
    totalMicroseconds += micros;
  }

  const top = [...selfMicroseconds.values()]
    .sort((left, right) => right.micros - left.micros)
    .slice(0, count)
    .map((entry) => ({
      name: entry.name,
      location: entry.location,
      selfMs: entry.micros / 1000,
      share: totalMicroseconds === 0 ? 0 : (100 * entry.micros) / totalMicroseconds,
    }));
  return { sampledMs: totalMicroseconds / 1000, top };
}

function shortenUrl(url: string, projectRoot: string): string {
  if (url.startsWith('file://')) {
    return relative(projectRoot, new URL(url).pathname);
  }
  return url;
}
