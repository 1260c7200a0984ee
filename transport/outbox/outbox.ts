/**
 * Durability and fsync: without `fsync`, an item on disk survives the process dying (SIGKILL, a crash: the page cache
 * is the kernel's) but not a power loss or a kernel crash. With `fsync`, each write is followed by an fdatasync before
 * its items are dispatched, so they survive a power loss too, at the cost of one fdatasync per write (never on the app's
 * call path: writes run after the append that queued them).
 */
import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readAcks, writeAcks, writeAcksNow, type Watermarks } from './acks.js';
import {
  closeSegment,
  closeSegmentNow,
  createSegment,
  createSegmentNow,
  lineBatches,
  listSegments,
  segmentName,
  syncData,
  syncDataNow,
  syncDirectory,
  writeAll,
  writeAllNow,
  type Segment,
} from './segments.js';
import { claimSlot, releaseSlot, type SlotLock } from './slot-lock.js';

export interface OutboxOptions<T> {
  /** Created if missing; each process takes a `slot-<n>/` of its own in it. */
  dir: string;
  /** Stable sink names (e.g. 'http', 'stripe', 'file-2'); each has its own ack watermark. */
  sinks: readonly string[];
  /** Cap on this outbox's segment bytes on disk; past it, items are dispatched without being written. */
  maxBytes: number;
  /** A new segment file is started once the current one is past this size. */
  segmentBytes: number;
  /** fdatasync after each write, before dispatch (see the top of this file). */
  fsync: boolean;
  /** Items in append order, once they are on disk (or could not be written: counted as overflow or unwritten). */
  onWritten(items: T[]): void;
  /**
   * Items of an earlier run the sink had not acknowledged, oldest first, in chunks. A returned promise holds the next
   * chunk back until it settles, so a sink can take a large backlog at its own pace.
   */
  onReplay(sink: string, items: T[]): void | Promise<void>;
  /** Disk faults, each kind once; messages carry no event content. */
  onError(err: Error): void;
}

export interface OutboxCounts {
  /** Items of this run written to a segment (and synced, with `fsync`). */
  written: number;
  /** Items of earlier runs read back and handed to at least one sink. */
  replayed: number;
  /** Items not written because the outbox was at `maxBytes`: dispatched from memory only. */
  overflow: number;
  /** Items not written because of a disk fault, or because the outbox is disabled or closed: dispatched from memory only. */
  unwritten: number;
  /** Lines of earlier runs that could not be read back (a write torn by a crash, a damaged file): skipped. */
  corrupt: number;
  /** Bytes of this outbox's segments on disk. */
  bytesOnDisk: number;
}

const MAX_SLOTS = 64;
const ACKS_FILE = 'acks.json';
const ACK_PERSIST_MS = 200;
/** Items per write and per replay chunk: bounds the work done in one turn of the event loop. */
const WRITE_CHUNK = 500;
const REPLAY_CHUNK = 500;

interface Entry<T> {
  item: T;
  seq: number;
}

/** The segment this run appends to. */
interface OpenSegment {
  segment: Segment;
  fd: number;
  /** The sequence number its next line will have. */
  next: number;
}

/**
 * A write-ahead outbox: every item is appended to a segment file before it is dispatched (`onWritten`), and stays on
 * disk until every sink has acknowledged it; what a sink had not acknowledged when the process died is replayed to it
 * on the next start. Never throws into its caller, and keeps nothing alive: its timers are unref'd.
 */
export class Outbox<T extends object> {
  readonly counts: OutboxCounts = { written: 0, replayed: 0, overflow: 0, unwritten: 0, corrupt: 0, bytesOnDisk: 0 };
  private readonly sequences = new WeakMap<T, number>();
  private readonly marks = new Map<string, number>();
  /** The lowest watermark last persisted: segments up to it may be deleted. */
  private releasable: number;
  private buffer: Entry<T>[] = [];
  private writeScheduled = false;
  private writing: Promise<void> | undefined;
  private current: OpenSegment | undefined;
  /** Written batches waiting for the replay to finish, so each sink sees sequence order; undefined once it has. */
  private heldBack: T[][] | undefined = [];
  private replaying: Promise<void> = Promise.resolve();
  private acksDirty = false;
  private ackTimer: NodeJS.Timeout | undefined;
  private persisting: Promise<void> | undefined;
  private closing = false;
  private closed = false;
  private readonly reported = new Set<string>();
  private overflowWarned = false;

  private constructor(
    private readonly options: OutboxOptions<T>,
    private readonly slot: SlotLock | undefined,
    private readonly segments: Segment[],
    marks: Watermarks,
    private nextSeq: number,
  ) {
    for (const sink of options.sinks) this.marks.set(sink, marks[sink] ?? 0);
    this.releasable = this.lowestMark();
    this.counts.bytesOnDisk = segments.reduce((n, s) => n + s.bytes, 0);
  }

  /**
   * Claims a slot and starts replaying what it holds (see {@link whenReplayed}). Never rejects: when no slot can be had,
   * the outbox is disabled (reported through onError) and dispatches every item from memory.
   */
  static async open<T extends object>(options: OutboxOptions<T>): Promise<Outbox<T>> {
    let slot: SlotLock | undefined;
    try {
      await mkdir(options.dir, { recursive: true });
      slot = await claimSlot(options.dir, MAX_SLOTS);
      if (slot === undefined) throw new Error(`no free slot among the ${MAX_SLOTS} under ${options.dir}`);
      const acks = await readAcks(join(slot.dir, ACKS_FILE));
      if (acks.problem !== undefined) safely(options.onError, new Error(`outbox: ${acks.problem}`));
      const segments = await listSegments(slot.dir);
      const highest = Math.max(0, ...Object.values(acks.marks), ...segments.map((s) => Math.max(s.base, s.last ?? 0)));
      const outbox = new Outbox(options, slot, segments, acks.marks, highest + 1);
      outbox.replaying = outbox.replay([...segments]).catch((err: unknown) => outbox.fault('replay', err));
      return outbox;
    } catch (err) {
      if (slot !== undefined) releaseSlot(slot);
      safely(options.onError, new Error(`outbox disabled, events are delivered from memory only: ${messageOf(err)}`));
      const outbox = new Outbox(options, undefined, [], {}, 1);
      outbox.heldBack = undefined;
      return outbox;
    }
  }

  /** Resolves once the replay of earlier runs is over (or was cut short by close); never rejects. */
  whenReplayed(): Promise<void> {
    return this.replaying;
  }

  /** Queues an item for the next write: synchronous, O(1), never throws. */
  append(item: T): void {
    const seq = this.nextSeq++;
    this.sequences.set(item, seq);
    if (this.closed) {
      // Closed: nothing is written any more, but the item is still dispatched.
      this.counts.unwritten++;
      setImmediate(() => this.dispatch([item])).unref();
      return;
    }
    this.buffer.push({ item, seq });
    this.scheduleWrite();
  }

  sequenceOf(item: T): number | undefined {
    return this.sequences.get(item);
  }

  /** The sink is done with this item and every item before it: sent, or dropped for good. */
  ack(sink: string, item: T): void {
    const seq = this.sequences.get(item);
    const mark = this.marks.get(sink);
    if (seq === undefined || mark === undefined || seq <= mark) return;
    this.marks.set(sink, seq);
    this.acksDirty = true;
    this.scheduleAckPersist();
  }

  /**
   * Resolves once every item appended so far is on disk (or could not be) and handed to onWritten, after the replay;
   * never rejects. Items held back by a replay that close cut short are not waited for: they stay for the next run.
   */
  async settled(): Promise<void> {
    await this.replaying;
    while (this.writing !== undefined || this.buffer.length > 0) {
      this.startWrite();
      await this.writing;
    }
  }

  /**
   * Writes what is buffered synchronously and dispatches it: for the process's last moment, before the sinks' own
   * last writes. A write already in flight is left to finish on its own; what is buffered then goes to a new segment,
   * so the two never interleave in one file.
   */
  writeNow(): void {
    const batch = this.buffer;
    this.buffer = [];
    if (batch.length === 0) return;
    this.writeBatchNow(batch);
    this.dispatch(batch.map((e) => e.item));
  }

  /** Writes what is buffered, persists the watermarks, closes files and gives up the slot. Never rejects. */
  async close(): Promise<void> {
    if (this.closing) return;
    // Stops the replay at its next chunk: what it did not hand over yet stays on disk for the next run.
    this.closing = true;
    try {
      while (this.writing !== undefined || this.buffer.length > 0) {
        this.startWrite();
        await this.writing;
      }
      if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
      await this.persisting;
      await this.persistAcks();
      if (this.current !== undefined) await closeSegment(this.current.fd).catch(() => undefined);
      this.current = undefined;
    } catch (err) {
      this.fault('close', err);
    } finally {
      this.closed = true;
      if (this.slot !== undefined) releaseSlot(this.slot);
    }
  }

  /** The same as close, synchronously, for the process's last moment ('exit'): see writeNow. */
  closeNow(): void {
    if (this.closed) return;
    this.writeNow();
    this.closing = true;
    this.closed = true;
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    if (this.slot === undefined) return;
    try {
      writeAcksNow(join(this.slot.dir, ACKS_FILE), Object.fromEntries(this.marks));
    } catch (err) {
      this.fault('acks', err);
    }
    // A write in flight still uses the segment's descriptor: it closes it when it completes.
    if (this.current !== undefined && this.writing === undefined) {
      try {
        closeSegmentNow(this.current.fd);
      } catch {
        // Closing is all that was left to do with it.
      }
      this.current = undefined;
    }
    releaseSlot(this.slot);
  }

  private scheduleWrite(): void {
    if (this.writeScheduled || this.writing !== undefined) return;
    this.writeScheduled = true;
    setImmediate(() => {
      this.writeScheduled = false;
      this.startWrite();
    }).unref();
  }

  private startWrite(): void {
    if (this.writing !== undefined || this.buffer.length === 0) return;
    const batch = this.buffer.length <= WRITE_CHUNK ? this.buffer : this.buffer.slice(0, WRITE_CHUNK);
    this.buffer = batch === this.buffer ? [] : this.buffer.slice(WRITE_CHUNK);
    this.writing = this.write(batch)
      .catch((err: unknown) => this.fault('write', err))
      .finally(() => {
        this.writing = undefined;
        if (this.closed && this.current !== undefined) {
          void closeSegment(this.current.fd).catch(() => undefined);
          this.current = undefined;
        }
        if (this.buffer.length > 0 && !this.closing) this.scheduleWrite();
      });
  }

  private async write(batch: Entry<T>[]): Promise<void> {
    const { data, count } = this.encode(batch);
    if (count > 0) {
      const first = batch[0].seq;
      let target: OpenSegment | undefined;
      try {
        target = await this.segmentFor(first);
        await writeAll(target.fd, data);
        target.next = first + count;
        target.segment.bytes += data.length;
        this.counts.bytesOnDisk += data.length;
        if (this.options.fsync) await syncData(target.fd);
        this.counts.written += count;
      } catch (err) {
        this.counts.unwritten += count;
        this.fault('write', err);
        // A failed write may have left part of a line: the segment is not appended to again.
        if (target !== undefined) await this.endSegment(target);
      }
    }
    this.dispatch(batch.map((e) => e.item));
  }

  private writeBatchNow(batch: Entry<T>[]): void {
    const { data, count } = this.encode(batch);
    if (count === 0) return;
    const first = batch[0].seq;
    const append = this.writing === undefined && this.current !== undefined && this.current.next === first;
    let fd: number | undefined;
    try {
      if (append) {
        fd = this.current!.fd;
      } else {
        const path = join(this.slot!.dir, segmentName(first));
        fd = createSegmentNow(path);
        this.segments.push({ base: first, path, bytes: 0, last: first + count - 1 });
      }
      writeAllNow(fd, data);
      if (append) this.current!.next = first + count;
      this.counts.bytesOnDisk += data.length;
      if (this.options.fsync) syncDataNow(fd);
      this.counts.written += count;
    } catch (err) {
      this.counts.unwritten += count;
      this.fault('write', err);
    } finally {
      if (!append && fd !== undefined) closeSegmentNow(fd);
    }
  }

  /**
   * The lines of the longest prefix of `batch` that fits under maxBytes and JSON can hold; the rest is counted as
   * overflow or unwritten (all of it unwritten when there is nowhere to write).
   */
  private encode(batch: Entry<T>[]): { data: Buffer; count: number } {
    if (this.slot === undefined) {
      this.counts.unwritten += batch.length;
      return { data: Buffer.alloc(0), count: 0 };
    }
    let text = '';
    let bytes = 0;
    let count = 0;
    let full = false;
    for (; count < batch.length; count++) {
      let line: string;
      try {
        line = `${JSON.stringify(batch[count].item)}\n`;
      } catch (err) {
        // An item JSON cannot hold (a cycle, a BigInt) cannot be written; it is still delivered.
        this.fault('encode', err);
        break;
      }
      const size = Buffer.byteLength(line);
      if (this.counts.bytesOnDisk + bytes + size > this.options.maxBytes) {
        this.warnOverflow();
        full = true;
        break;
      }
      text += line;
      bytes += size;
    }
    // The rest of the batch is not written either: a segment holds consecutive sequence numbers only.
    const left = batch.length - count;
    if (full) this.counts.overflow += left;
    else this.counts.unwritten += left;
    return { data: Buffer.from(text), count };
  }

  /** The open segment if it continues at `first` and has room, or a new one starting at `first`. */
  private async segmentFor(first: number): Promise<OpenSegment> {
    const current = this.current;
    if (current !== undefined && current.next === first && current.segment.bytes < this.options.segmentBytes) return current;
    if (current !== undefined) await this.endSegment(current);
    const path = join(this.slot!.dir, segmentName(first));
    const fd = await createSegment(path);
    const segment: Segment = { base: first, path, bytes: 0, last: undefined };
    this.segments.push(segment);
    this.current = { segment, fd, next: first };
    if (this.options.fsync) await syncDirectory(this.slot!.dir);
    return this.current;
  }

  private async endSegment(open: OpenSegment): Promise<void> {
    if (this.current === open) this.current = undefined;
    open.segment.last = open.next - 1;
    await closeSegment(open.fd).catch(() => undefined);
  }

  private dispatch(items: T[]): void {
    if (this.heldBack !== undefined) this.heldBack.push(items);
    else this.deliverWritten(items);
  }

  private deliverWritten(items: T[]): void {
    try {
      this.options.onWritten(items);
    } catch (err) {
      this.fault('onWritten', err);
    }
  }

  private async replay(old: Segment[]): Promise<void> {
    try {
      await this.release();
      // Per sink, the highest sequence number handed over: each sink sees strictly increasing sequence numbers.
      const handed = new Map(this.marks);
      for (const segment of old) {
        if (this.closing) return;
        if ((segment.last ?? Infinity) <= this.lowestMark()) continue;
        await this.replaySegment(segment, handed);
      }
    } finally {
      // Cut short by close: new items stay held back, on disk, so no sink acknowledges past what it was not replayed.
      if (!this.closing) {
        const held = this.heldBack ?? [];
        this.heldBack = undefined;
        for (const items of held) this.deliverWritten(items);
        await this.release();
      }
    }
  }

  private async replaySegment(segment: Segment, handed: Map<string, number>): Promise<void> {
    let seq = segment.base;
    try {
      for await (const lines of lineBatches(segment.path, REPLAY_CHUNK)) {
        if (this.closing) return;
        const lowest = Math.min(...handed.values());
        const entries: Entry<T>[] = [];
        for (const line of lines) {
          const at = seq++;
          if (at <= lowest) continue;
          const item = parseItem(line);
          if (item === undefined) {
            this.counts.corrupt++;
            continue;
          }
          this.sequences.set(item as T, at);
          entries.push({ item: item as T, seq: at });
        }
        await this.handOver(entries, handed);
      }
    } catch (err) {
      // Deleted meanwhile: every sink had acknowledged it.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
  }

  private async handOver(entries: Entry<T>[], handed: Map<string, number>): Promise<void> {
    if (entries.length === 0) return;
    const lowest = Math.min(...handed.values());
    this.counts.replayed += entries.filter((e) => e.seq > lowest).length;
    for (const [sink, after] of handed) {
      const items = entries.filter((e) => e.seq > after).map((e) => e.item);
      if (items.length === 0) continue;
      handed.set(sink, entries[entries.length - 1].seq);
      try {
        await this.options.onReplay(sink, items);
      } catch (err) {
        this.fault('onReplay', err);
      }
    }
  }

  private scheduleAckPersist(): void {
    if (this.ackTimer !== undefined || this.persisting !== undefined || this.slot === undefined || this.closing) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      void this.persistAcks();
    }, ACK_PERSIST_MS);
    this.ackTimer.unref();
  }

  /**
   * Puts the watermarks on disk now rather than at the next debounce (and releases what they allow): one persist at a
   * time, acks that came in meanwhile persisted after it. Never rejects.
   */
  persistAcks(): Promise<void> {
    if (this.persisting !== undefined) return this.persisting;
    this.persisting = this.persistOnce()
      .catch((err: unknown) => this.fault('acks', err))
      .finally(() => {
        this.persisting = undefined;
        if (this.acksDirty) this.scheduleAckPersist();
      });
    return this.persisting;
  }

  private async persistOnce(): Promise<void> {
    if (!this.acksDirty || this.slot === undefined) return;
    this.acksDirty = false;
    const lowest = this.lowestMark();
    await writeAcks(join(this.slot.dir, ACKS_FILE), Object.fromEntries(this.marks));
    this.releasable = lowest;
    await this.release();
  }

  /** Deletes every segment but the one being written whose items every sink has acknowledged, as last persisted. */
  private async release(): Promise<void> {
    const done = this.segments.filter((s) => s !== this.current?.segment && s.last !== undefined && s.last <= this.releasable);
    for (const segment of done) {
      this.segments.splice(this.segments.indexOf(segment), 1);
      // Counted off before the file goes, so the count is never behind the disk; back on if it stays.
      this.counts.bytesOnDisk -= segment.bytes;
      try {
        await unlink(segment.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        this.counts.bytesOnDisk += segment.bytes;
        this.fault('release', err);
      }
    }
  }

  private lowestMark(): number {
    let lowest = Infinity;
    for (const mark of this.marks.values()) lowest = Math.min(lowest, mark);
    return lowest;
  }

  private warnOverflow(): void {
    if (this.overflowWarned) return;
    this.overflowWarned = true;
    safely(
      this.options.onError,
      new Error(`outbox: over its maxBytes (${this.options.maxBytes}): events are delivered from memory only until sinks catch up`),
    );
  }

  /** Reports a fault once per kind (what failed, and the error code): a full disk is not reported for every write. */
  private fault(what: string, err: unknown): void {
    const kind = `${what}:${(err as NodeJS.ErrnoException | undefined)?.code ?? ''}`;
    if (this.reported.has(kind)) return;
    this.reported.add(kind);
    safely(this.options.onError, new Error(`outbox: ${what} failed: ${messageOf(err)}`));
  }
}

function parseItem(line: string): object | undefined {
  try {
    const item: unknown = JSON.parse(line);
    return item !== null && typeof item === 'object' ? item : undefined;
  } catch {
    return undefined;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function safely(onError: (err: Error) => void, err: Error): void {
  try {
    onError(err);
  } catch {
    // The caller's own handler threw: there is nowhere left to report to.
  }
}
