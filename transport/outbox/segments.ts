import { close, closeSync, createReadStream, fdatasync, fdatasyncSync, fsync, open, openSync, write, writeSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A segment file: `<baseSeq>.jsonl`, one JSON line per item, the item on line i having sequence number baseSeq + i.
 * Raw file descriptors rather than FileHandles: the process's last moment closes them synchronously, which a FileHandle
 * does not allow.
 */
export interface Segment {
  base: number;
  path: string;
  bytes: number;
  /** The highest sequence number it can hold; undefined while it is being written. */
  last: number | undefined;
}

const NAME = /^(\d{1,16})\.jsonl$/;

export function segmentName(base: number): string {
  return `${String(base).padStart(16, '0')}.jsonl`;
}

/** The slot's segments, oldest first, each with its last sequence number (see {@link countLines} for the newest). */
export async function listSegments(dir: string): Promise<Segment[]> {
  const segments: Segment[] = [];
  for (const name of await readdir(dir)) {
    const match = NAME.exec(name);
    if (match === null) continue;
    const path = join(dir, name);
    const { size } = await stat(path);
    segments.push({ base: Number(match[1]), path, bytes: size, last: undefined });
  }
  segments.sort((a, b) => a.base - b.base);
  // A segment ends before the next begins; the newest one's end is only known by counting its lines.
  for (let i = 0; i < segments.length - 1; i++) segments[i].last = segments[i + 1].base - 1;
  const newest = segments.at(-1);
  if (newest !== undefined) newest.last = newest.base + (await countLines(newest.path)) - 1;
  return segments;
}

/** Lines in a file, a last one without its newline included. */
export async function countLines(path: string): Promise<number> {
  let lines = 0;
  let lastByte = 10;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
    lastByte = chunk[chunk.length - 1];
  }
  return lastByte === 10 ? lines : lines + 1;
}

/**
 * A file's lines in batches of at most `max`, streamed: never more in memory than one read chunk and one batch. A last
 * line without its newline (a write cut short) is included: whoever parses it finds out whether it is whole.
 */
export async function* lineBatches(path: string, max: number): AsyncGenerator<string[]> {
  let partial: Buffer[] = [];
  let batch: string[] = [];
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      batch.push(partial.length === 0 ? piece.toString('utf8') : Buffer.concat([...partial, piece]).toString('utf8'));
      partial = [];
      start = nl + 1;
      if (batch.length === max) {
        yield batch;
        batch = [];
      }
    }
    if (start < chunk.length) partial.push(chunk.subarray(start));
  }
  if (partial.length > 0) batch.push(Buffer.concat(partial).toString('utf8'));
  if (batch.length > 0) yield batch;
}

const openAsync = promisify(open);
const writeAsync = promisify(write);
const fdatasyncAsync = promisify(fdatasync);
const fsyncAsync = promisify(fsync);
const closeAsync = promisify(close);

/** Creates a new segment for appending; fails if it exists (a run never appends to an earlier run's segment). */
export function createSegment(path: string): Promise<number> {
  return openAsync(path, 'ax');
}

export function createSegmentNow(path: string): number {
  return openSync(path, 'ax');
}

export async function writeAll(fd: number, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await writeAsync(fd, data, offset, data.length - offset, null);
    offset += bytesWritten;
  }
}

export function writeAllNow(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset, null);
}

export const syncData = (fd: number): Promise<void> => fdatasyncAsync(fd);
export const syncDataNow = (fd: number): void => fdatasyncSync(fd);
export const closeSegment = (fd: number): Promise<void> => closeAsync(fd);
export const closeSegmentNow = (fd: number): void => closeSync(fd);

/**
 * Makes a new segment's directory entry durable: without it, a power loss can lose a freshly created file whose data
 * was synced. Best effort: some platforms cannot open a directory.
 */
export async function syncDirectory(dir: string): Promise<void> {
  let fd: number | undefined;
  try {
    fd = await openAsync(dir, 'r');
    await fsyncAsync(fd);
  } catch {
    // Not supported here (Windows): the data itself is still synced.
  } finally {
    if (fd !== undefined) await closeAsync(fd).catch(() => undefined);
  }
}
