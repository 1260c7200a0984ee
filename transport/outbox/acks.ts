import { renameSync, writeFileSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';

/** Each sink's watermark: the sequence number up to which it is done with every item. */
export type Watermarks = Record<string, number>;

export interface ReadAcks {
  marks: Watermarks;
  /** Why the file could not be used (it then counts as no acks at all); undefined when it was fine or absent. */
  problem?: string;
}

export async function readAcks(path: string): Promise<ReadAcks> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { marks: {} };
    return { marks: {}, problem: `could not read ${path}: ${(err as Error).message}` };
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    const marks: Watermarks = {};
    for (const [sink, mark] of Object.entries(parsed)) {
      if (!Number.isSafeInteger(mark) || (mark as number) < 0) throw new Error(`bad watermark for ${JSON.stringify(sink)}`);
      marks[sink] = mark as number;
    }
    return { marks };
  } catch (err) {
    return { marks: {}, problem: `${path} is corrupt (${(err as Error).message}): every item still on disk is replayed` };
  }
}

/** Atomic: a reader sees the old file or the new one, never half of one. */
export async function writeAcks(path: string, marks: Watermarks): Promise<void> {
  await writeFile(`${path}.tmp`, JSON.stringify(marks));
  await rename(`${path}.tmp`, path);
}

/** Its own temp file: an asynchronous write may still be in flight on the other one. */
export function writeAcksNow(path: string, marks: Watermarks): void {
  writeFileSync(`${path}.tmp-now`, JSON.stringify(marks));
  renameSync(`${path}.tmp-now`, path);
}
