// The write-ahead outbox: items on disk before dispatch, released once every sink acknowledged them, replayed per sink
// after a crash, and never a throw into the caller whatever the disk does.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Outbox as OutboxClass, OutboxOptions } from '../transport/outbox/outbox.js';
import { repoRoot, requireFromRepo, until } from './helpers.js';

const { Outbox } = requireFromRepo('./dist/transport/outbox/outbox.js') as typeof import('../transport/outbox/outbox.js');

interface Item {
  id: number;
}

interface Opened {
  outbox: OutboxClass<Item>;
  written: Item[];
  replays: Record<string, Item[]>;
  errors: Error[];
  /** Every callback in the order it came: `written:<ids>` or `replay:<sink>:<ids>`. */
  log: string[];
}

const dirs: string[] = [];
const opened: OutboxClass<Item>[] = [];

afterEach(async () => {
  for (const outbox of opened.splice(0)) await outbox.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'outbox-test-'));
  dirs.push(dir);
  return dir;
}

async function openOutbox(dir: string, options: Partial<OutboxOptions<Item>> = {}): Promise<Opened> {
  const written: Item[] = [];
  const replays: Record<string, Item[]> = {};
  const errors: Error[] = [];
  const log: string[] = [];
  const ids = (items: Item[]): string => items.map((i) => i.id).join(',');
  const outbox = await Outbox.open<Item>({
    dir,
    sinks: ['a', 'b'],
    maxBytes: 1 << 20,
    segmentBytes: 1 << 16,
    fsync: false,
    onWritten: (items) => {
      written.push(...items);
      log.push(`written:${ids(items)}`);
    },
    onReplay: (sink, items) => {
      (replays[sink] ??= []).push(...items);
      log.push(`replay:${sink}:${ids(items)}`);
    },
    onError: (err) => errors.push(err),
    ...options,
  });
  opened.push(outbox);
  return { outbox, written, replays, errors, log };
}

const range = (from: number, to: number): Item[] => Array.from({ length: to - from + 1 }, (_, i) => ({ id: from + i }));
const idsOf = (items: Item[] | undefined): number[] => (items ?? []).map((i) => i.id);

function segmentsIn(slotDir: string): string[] {
  return readdirSync(slotDir)
    .filter((name) => name.endsWith('.jsonl'))
    .sort();
}

/** Every line of a slot's segments, oldest first. */
function itemsOnDisk(slotDir: string): Item[] {
  return segmentsIn(slotDir).flatMap((name) =>
    readFileSync(join(slotDir, name), 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Item),
  );
}

describe('outbox', () => {
  it('writes appended items to disk, then hands them to onWritten in append order', async () => {
    const dir = await tempDir();
    const { outbox, written, errors } = await openOutbox(dir);
    const items = range(1, 20);
    for (const item of items) outbox.append(item);
    await until(() => written.length === 20, 'all items written');
    expect(idsOf(written)).toEqual(idsOf(items));
    expect(idsOf(itemsOnDisk(join(dir, 'slot-0')))).toEqual(idsOf(items));
    const seqs = items.map((i) => outbox.sequenceOf(i)!);
    expect(seqs.every((s, i) => i === 0 || s === seqs[i - 1] + 1)).toBe(true);
    expect(outbox.counts).toMatchObject({ written: 20, overflow: 0, unwritten: 0, corrupt: 0 });
    expect(outbox.counts.bytesOnDisk).toBe(items.reduce((n, i) => n + JSON.stringify(i).length + 1, 0));
    expect(errors).toEqual([]);
  });

  it('deletes the segments every sink acknowledged, and only those, keeping the one being written', async () => {
    const dir = await tempDir();
    const slot = join(dir, 'slot-0');
    const { outbox, written } = await openOutbox(dir, { segmentBytes: 20 });
    const items = range(1, 40);
    // One write per round, each past segmentBytes: four segments.
    for (let round = 0; round < 4; round++) {
      for (const item of items.slice(round * 10, round * 10 + 10)) outbox.append(item);
      await until(() => written.length === round * 10 + 10, `round ${round} written`);
    }
    expect(segmentsIn(slot)).toHaveLength(4);

    outbox.ack('a', items[39]);
    await until(() => existsSync(join(slot, 'acks.json')) && readFileSync(join(slot, 'acks.json'), 'utf8').includes('"a":40'), 'acks persisted');
    expect(segmentsIn(slot)).toHaveLength(4);

    outbox.ack('b', items[24]);
    await until(() => segmentsIn(slot).length === 2, 'the first two segments released');
    outbox.ack('b', items[39]);
    await until(() => segmentsIn(slot).length === 1, 'all but the current segment released');
    expect(idsOf(itemsOnDisk(slot))).toEqual(idsOf(items.slice(30)));
    expect(outbox.counts.bytesOnDisk).toBe(readFileSync(join(slot, segmentsIn(slot)[0])).length);
    // An ack below the watermark is ignored.
    outbox.ack('a', items[3]);
    await outbox.close();
    expect(JSON.parse(readFileSync(join(slot, 'acks.json'), 'utf8'))).toEqual({ a: 40, b: 40 });
  });

  it('replays to each sink exactly what it had not acknowledged, and new items come after the replay', async () => {
    const dir = await tempDir();
    const first = await openOutbox(dir);
    const items = range(1, 10);
    for (const item of items) first.outbox.append(item);
    await until(() => first.written.length === 10, 'written');
    first.outbox.ack('a', items[4]);
    first.outbox.ack('b', items[1]);
    await first.outbox.close();
    expect(existsSync(join(dir, 'slot-0', 'lock'))).toBe(false);

    // The replay waits for the sinks (a returned promise), so an item appended meanwhile is written before it ends.
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const second = await openOutbox(dir, {
      sinks: ['a', 'b', 'c'],
      onReplay: (sink, replayed) => {
        (second.replays[sink] ??= []).push(...replayed);
        second.log.push(`replay:${sink}`);
        return gate;
      },
    });
    const late = { id: 11 };
    second.outbox.append(late);
    await until(() => second.outbox.counts.written === 1, 'the new item on disk');
    expect(second.written).toEqual([]);
    release();
    await second.outbox.whenReplayed();
    await until(() => second.written.length === 1, 'the new item dispatched');

    expect(idsOf(second.replays.a)).toEqual([6, 7, 8, 9, 10]);
    expect(idsOf(second.replays.b)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
    // A sink new to the slot gets everything still on disk: here all of it, since the one segment held 1 and 2 for b.
    expect(idsOf(second.replays.c)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(second.log).toEqual(['replay:a', 'replay:b', 'replay:c', 'written:11']);
    expect(second.outbox.counts.replayed).toBe(10);
    const replayedSeqs = second.replays.b.map((i) => second.outbox.sequenceOf(i)!);
    expect(second.outbox.sequenceOf(late)!).toBeGreaterThan(Math.max(...replayedSeqs));
    // Acks of replayed items count like any other: everything acknowledged, nothing left but the current segment.
    for (const sink of ['a', 'b', 'c']) second.outbox.ack(sink, late);
    await second.outbox.close();
    expect(idsOf(itemsOnDisk(join(dir, 'slot-0')))).toEqual([11]);
    const third = await openOutbox(dir, { sinks: ['a', 'b', 'c'] });
    await third.outbox.whenReplayed();
    expect(third.replays).toEqual({});
  });

  it('skips a torn last line, and counts it', async () => {
    const dir = await tempDir();
    const slot = join(dir, 'slot-0');
    const first = await openOutbox(dir);
    for (const item of range(1, 3)) first.outbox.append(item);
    await first.outbox.close();
    appendFileSync(join(slot, segmentsIn(slot)[0]), '{"id":4,"na');

    const second = await openOutbox(dir);
    await second.outbox.whenReplayed();
    expect(idsOf(second.replays.a)).toEqual([1, 2, 3]);
    expect(second.outbox.counts).toMatchObject({ replayed: 3, corrupt: 1 });
    const next = { id: 5 };
    second.outbox.append(next);
    await until(() => second.written.length === 1, 'written');
    expect(second.outbox.sequenceOf(next)!).toBeGreaterThan(second.outbox.sequenceOf(second.replays.a[2])!);
    // The new run writes a segment of its own: the torn one is never appended to.
    expect(segmentsIn(slot)).toHaveLength(2);
  });

  it('past maxBytes, dispatches items without writing them, counts them and warns once', async () => {
    const dir = await tempDir();
    const { outbox, written, errors } = await openOutbox(dir, { maxBytes: 30 });
    const items = range(1, 10);
    for (const item of items) outbox.append(item);
    await until(() => written.length === 10, 'all dispatched');
    for (const item of range(11, 12)) outbox.append(item);
    await until(() => written.length === 12, 'all dispatched');
    expect(idsOf(written)).toEqual(idsOf(range(1, 12)));
    // Each line is 9 bytes: three fit under 30.
    expect(outbox.counts).toMatchObject({ written: 3, overflow: 9, bytesOnDisk: 27 });
    expect(idsOf(itemsOnDisk(join(dir, 'slot-0')))).toEqual([1, 2, 3]);
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toMatch(/maxBytes/);
  });

  it('two outboxes opened on one dir at once take different slots', async () => {
    const dir = await tempDir();
    const [one, two] = await Promise.all([openOutbox(dir), openOutbox(dir)]);
    one.outbox.append({ id: 1 });
    two.outbox.append({ id: 2 });
    await until(() => one.written.length === 1 && two.written.length === 1, 'both written');
    const slots = readdirSync(dir).sort();
    expect(slots).toEqual(['slot-0', 'slot-1']);
    for (const slot of slots) expect(readFileSync(join(dir, slot, 'lock'), 'utf8')).toBe(String(process.pid));
    expect(new Set([...itemsOnDisk(join(dir, 'slot-0')), ...itemsOnDisk(join(dir, 'slot-1'))].map((i) => i.id))).toEqual(new Set([1, 2]));
    await one.outbox.close();
    await two.outbox.close();
    expect(existsSync(join(dir, 'slot-0', 'lock'))).toBe(false);
    expect(existsSync(join(dir, 'slot-1', 'lock'))).toBe(false);
  });

  it('takes over the slot of a process that was SIGKILLed, and replays what it wrote', async () => {
    const dir = await tempDir();
    const script = `
      const { Outbox } = require(process.argv[1]);
      Outbox.open({
        dir: process.argv[2], sinks: ['a', 'b'], maxBytes: 1 << 20, segmentBytes: 1 << 16, fsync: false,
        onWritten: (items) => { if (items.at(-1).id === 5) console.log('READY'); },
        onReplay: () => {}, onError: (err) => console.error(err.message),
      }).then((outbox) => { for (let id = 1; id <= 5; id++) outbox.append({ id }); });
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['-e', script, join(repoRoot, 'dist/transport/outbox/outbox.js'), dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    await until(() => stdout.includes('READY'), 'the child wrote its items');
    expect(readFileSync(join(dir, 'slot-0', 'lock'), 'utf8')).toBe(String(child.pid));
    child.kill('SIGKILL');
    await exited;

    const { outbox, replays } = await openOutbox(dir);
    await outbox.whenReplayed();
    expect(readFileSync(join(dir, 'slot-0', 'lock'), 'utf8')).toBe(String(process.pid));
    expect(idsOf(replays.a)).toEqual([1, 2, 3, 4, 5]);
    expect(idsOf(replays.b)).toEqual([1, 2, 3, 4, 5]);
  });

  it('treats a lock naming its own pid, held by no outbox of this process, as stale (a restart as the same pid)', async () => {
    const dir = await tempDir();
    const slot = join(dir, 'slot-0');
    mkdirSync(slot, { recursive: true });
    writeFileSync(join(slot, 'lock'), String(process.pid));
    writeFileSync(join(slot, '0000000000000001.jsonl'), '{"id":1}\n{"id":2}\n');
    writeFileSync(join(slot, 'acks.json'), '{"a":1,"b":0,"gone":2}');
    const { outbox, replays } = await openOutbox(dir);
    await outbox.whenReplayed();
    expect(readdirSync(dir)).toEqual(['slot-0']);
    expect(idsOf(replays.a)).toEqual([2]);
    expect(idsOf(replays.b)).toEqual([1, 2]);
  });

  it('reports a corrupt acks.json and replays everything', async () => {
    const dir = await tempDir();
    const slot = join(dir, 'slot-0');
    mkdirSync(slot, { recursive: true });
    writeFileSync(join(slot, '0000000000000001.jsonl'), '{"id":1}\n{"id":2}\n');
    writeFileSync(join(slot, 'acks.json'), '{"a":');
    const { outbox, replays, errors } = await openOutbox(dir);
    await outbox.whenReplayed();
    expect(idsOf(replays.a)).toEqual([1, 2]);
    expect(errors.map((e) => e.message).join('\n')).toMatch(/acks\.json is corrupt/);
  });

  it('closeNow writes what is buffered, dispatches it, persists acks and frees the slot, all synchronously', async () => {
    const dir = await tempDir();
    const slot = join(dir, 'slot-0');
    const { outbox, written } = await openOutbox(dir);
    await outbox.whenReplayed();
    const items = range(1, 3);
    for (const item of items) outbox.append(item);
    outbox.ack('a', items[1]);
    outbox.closeNow();
    expect(idsOf(written)).toEqual([1, 2, 3]);
    expect(idsOf(itemsOnDisk(slot))).toEqual([1, 2, 3]);
    expect(JSON.parse(readFileSync(join(slot, 'acks.json'), 'utf8'))).toEqual({ a: 2, b: 0 });
    expect(existsSync(join(slot, 'lock'))).toBe(false);
    expect(outbox.counts.written).toBe(3);
  });

  it('a disk fault mid-run is reported, never thrown, and delivery goes on from memory', async () => {
    const dir = await tempDir();
    const { outbox, written, errors } = await openOutbox(dir, { segmentBytes: 1 });
    outbox.append({ id: 1 });
    await until(() => written.length === 1, 'first write');
    rmSync(join(dir, 'slot-0'), { recursive: true, force: true });
    // segmentBytes 1: each write needs a new segment, which cannot be created any more.
    const items = range(2, 4);
    for (const item of items) {
      outbox.append(item);
      await until(() => written.length === item.id, `item ${item.id} dispatched`);
    }
    expect(idsOf(written)).toEqual([1, 2, 3, 4]);
    expect(outbox.counts).toMatchObject({ written: 1, unwritten: 3 });
    const writeErrors = errors.filter((e) => /write failed/.test(e.message));
    expect(writeErrors).toHaveLength(1);
    outbox.ack('a', items[2]);
    outbox.ack('b', items[2]);
    await expect(outbox.close()).resolves.toBeUndefined();
    expect(errors.some((e) => /acks failed/.test(e.message))).toBe(true);
    for (const err of errors) expect(err.message).not.toMatch(/"id"/);
  });

  it('when no slot can be had, is disabled, reports it, and still dispatches every item', async () => {
    const dir = await tempDir();
    // A file where the directory should be: nothing can be created under it.
    const blocked = join(dir, 'not-a-dir');
    writeFileSync(blocked, '');
    const { outbox, written, errors } = await openOutbox(blocked);
    for (const item of range(1, 3)) outbox.append(item);
    await until(() => written.length === 3, 'dispatched');
    expect(outbox.counts).toMatchObject({ written: 0, unwritten: 3 });
    expect(errors[0].message).toMatch(/outbox disabled/);
  });
});
