import { unlinkSync } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** A slot this process holds: `dir/slot-<n>/`, with its `lock` naming our pid. */
export interface SlotLock {
  dir: string;
  lockPath: string;
}

/**
 * Locks held by this process. A lock naming our own pid is stale (a container restarted as the same pid) unless an
 * outbox of this very process holds it: two outboxes on one dir in one process must still take different slots.
 */
const held = new Set<string>();

/** A lock left empty (its writer died between creating and writing it) is stale once it is this old. */
const EMPTY_LOCK_GRACE_MS = 5_000;

/**
 * Claims the first free slot under `root`: one whose lock does not exist, or names a dead process. Resolves undefined
 * when all `maxSlots` are taken.
 */
export async function claimSlot(root: string, maxSlots: number): Promise<SlotLock | undefined> {
  for (let n = 0; n < maxSlots; n++) {
    const dir = join(root, `slot-${n}`);
    const lockPath = resolve(dir, 'lock');
    if (held.has(lockPath)) continue;
    held.add(lockPath);
    let claimed = false;
    try {
      await mkdir(dir, { recursive: true });
      claimed = await tryLock(lockPath);
    } finally {
      if (!claimed) held.delete(lockPath);
    }
    if (claimed) return { dir, lockPath };
  }
  return undefined;
}

/** For close and the process's last moment: removes the lock, so the next process takes the slot without a check. */
export function releaseSlot(lock: SlotLock): void {
  held.delete(lock.lockPath);
  try {
    unlinkSync(lock.lockPath);
  } catch {
    // Already gone (the slot was removed): nothing to release.
  }
}

async function tryLock(lockPath: string): Promise<boolean> {
  // A few rounds: a lock may vanish between our failed create and our read (its owner closed).
  for (let round = 0; round < 3; round++) {
    if (await createLock(lockPath)) return true;
    const content = await readFile(lockPath, 'utf8').catch(() => undefined);
    if (content === undefined) continue;
    if (!(await isStale(lockPath, content))) return false;
    // Take the stale lock over by moving it aside, never by deleting it in place: of several processes that found it
    // stale at once, one moves it; a later mover may have moved a fresh lock the winner just created, and puts it back.
    const aside = `${lockPath}.${process.pid}.stale`;
    try {
      await rename(lockPath, aside);
    } catch {
      continue;
    }
    const moved = await readFile(aside, 'utf8').catch(() => undefined);
    if (moved !== content) {
      await rename(aside, lockPath).catch(() => undefined);
      return false;
    }
    await unlink(aside).catch(() => undefined);
  }
  return false;
}

/** Creates the lock with the exclusive flag; false when it exists. */
async function createLock(lockPath: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(lockPath, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await handle.writeFile(String(process.pid));
  } finally {
    await handle.close();
  }
  return true;
}

async function isStale(lockPath: string, content: string): Promise<boolean> {
  const pid = Number(content.trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    const age = await stat(lockPath).then((s) => Date.now() - s.mtimeMs, () => 0);
    return age > EMPTY_LOCK_GRACE_MS;
  }
  if (pid === process.pid) return true;
  return !isAlive(pid);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, but another user's.
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
