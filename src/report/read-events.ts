import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { parseEventLine } from './parse-event.js';
import type { ReportEvent } from './report-event.js';

/** The lines of a usage file that held no event the report could read. */
export interface SkippedLines {
  count: number;
  /** 1-based; undefined when none was skipped. */
  firstLine: number | undefined;
}

/** A usage file that cannot be opened (missing, a directory, unreadable): the user's mistake, not a fault. */
export class UnreadableFileError extends Error {
  override name = 'UnreadableFileError';
}

async function openInput(path: string): Promise<Readable> {
  if (path === '-') return process.stdin;
  // Opened before streaming so that a missing file is one clear error, not an error event mid-read.
  const handle = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new UnreadableFileError(`cannot read ${JSON.stringify(path)}: ${err.code === 'ENOENT' ? 'no such file' : (err.code ?? err.message)}`);
  });
  const stats = await handle.stat();
  if (stats.isDirectory()) {
    await handle.close();
    throw new UnreadableFileError(`cannot read ${JSON.stringify(path)}: it is a directory`);
  }
  return createReadStream('', { fd: handle });
}

/**
 * Streams a JSON Lines usage file (`-`: stdin) line by line, handing each event to `onEvent`: the file is never held
 * in memory whole. Blank lines are ignored; any other line without a readable event is skipped and counted.
 */
export async function readEvents(path: string, onEvent: (event: ReportEvent) => void): Promise<SkippedLines> {
  const input = await openInput(path);
  const lines = createInterface({ input, crlfDelay: Infinity });
  const skipped: SkippedLines = { count: 0, firstLine: undefined };
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber++;
    if (line.trim() === '') continue;
    const event = parseEventLine(line);
    if (event !== undefined) {
      onEvent(event);
    } else {
      skipped.count++;
      skipped.firstLine ??= lineNumber;
    }
  }
  return skipped;
}
