import { randomUUID } from 'node:crypto';
import type { Reservation } from '../store.js';

/** Settlements and bookings of one tenant and window that never reached Redis, summed; written under its own id. */
export interface WindowAggregate {
  kind: 'window';
  id: string;
  /** Where the journal keeps it: its tenant and window, and its once-only id if it has one. */
  slot: string;
  tenantId: string;
  windowKey: string;
  windowEnd: number;
  spentNano: number;
  /** What the settled reservations held in Redis in this window, to release. */
  releaseNano: number;
  /** Revenue booked in this window. */
  revenueNano: number;
}

/** A settlement that may or may not have reached Redis (its command got no reply): written again under the reservation's id. */
export interface ReservationSettlement {
  kind: 'reservation';
  reservation: Reservation;
  actualNano: number;
}

export type JournalEntry = WindowAggregate | ReservationSettlement;

/**
 * The settlements waiting for Redis, in bounded memory: those that surely never reached Redis are summed per tenant and
 * window; only those whose outcome is unknown (their command was under way when Redis went away, so at most the calls
 * in flight at that moment) are kept one by one, each to be written again under its reservation's id. Every entry is
 * idempotent in Redis, so writing one whose earlier reply was lost changes nothing twice.
 */
export class SettlementJournal {
  private readonly uncertain = new Map<string, ReservationSettlement>();
  /** Aggregates still summing, by window and tenant. */
  private readonly growing = new Map<string, WindowAggregate>();
  /** Aggregates handed out for writing: their id is fixed, and new settlements go to a growing one. */
  private readonly sealed = new Map<string, WindowAggregate>();

  get size(): number {
    return this.uncertain.size + this.growing.size + this.sealed.size;
  }

  addUncertain(reservation: Reservation, actualNano: number): void {
    this.uncertain.set(reservation.id, { kind: 'reservation', reservation, actualNano });
  }

  /**
   * `onceId`: a booking that must reach Redis at most once whichever process writes it. It is not summed with others, and
   * its id (so the REPLAY script's marker) is derived from `onceId`, the same in every process.
   */
  addToWindow(tenantId: string, windowKey: string, windowEnd: number, spentNano: number, releaseNano: number, revenueNano = 0, onceId?: string): void {
    const slot = onceId === undefined ? `${windowKey} ${tenantId}` : `${windowKey} ${tenantId} ${onceId}`;
    const aggregate = this.growing.get(slot);
    if (aggregate === undefined) {
      const id = onceId === undefined ? randomUUID() : `${onceId}:${windowKey}`;
      this.growing.set(slot, { kind: 'window', id, slot, tenantId, windowKey, windowEnd, spentNano, releaseNano, revenueNano });
      return;
    }
    aggregate.spentNano += spentNano;
    aggregate.releaseNano += releaseNano;
    aggregate.revenueNano += revenueNano;
  }

  /** A late reply says the reservation's settlement reached Redis after all. */
  resolved(reservationId: string): void {
    this.uncertain.delete(reservationId);
  }

  /** The next entry to write: uncertain settlements first, then aggregates already sent once, then a new aggregate. */
  next(): JournalEntry | undefined {
    const uncertain = this.uncertain.values().next();
    if (!uncertain.done) return uncertain.value;
    const sealed = this.sealed.values().next();
    if (!sealed.done) return sealed.value;
    const growing = this.growing.entries().next();
    if (growing.done) return undefined;
    const [slot, aggregate] = growing.value;
    this.growing.delete(slot);
    this.sealed.set(slot, aggregate);
    return aggregate;
  }

  /** The entry is in Redis (or Redis refused it for good). */
  done(entry: JournalEntry): void {
    if (entry.kind === 'reservation') {
      if (this.uncertain.get(entry.reservation.id) === entry) this.uncertain.delete(entry.reservation.id);
    } else {
      this.sealed.delete(entry.slot);
    }
  }
}
