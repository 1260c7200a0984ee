import { appendFileSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { DeliveryError } from './retry.js';

/** Appends each batch to a JSON Lines file: a durable usage log for a single machine, with or without an ingest url. */
export class FileSender {
  constructor(readonly path: string) {}

  async send(events: readonly unknown[]): Promise<void> {
    try {
      await appendFile(this.path, lines(events));
    } catch (err) {
      throw new DeliveryError(`could not append to the usage file: ${(err as Error).message}`, true);
    }
  }

  /** For the process's last moment ('exit'), when nothing asynchronous can run any more. */
  sendNow(events: readonly unknown[]): void {
    if (events.length > 0) appendFileSync(this.path, lines(events));
  }
}

function lines(events: readonly unknown[]): string {
  let out = '';
  for (const event of events) out += `${JSON.stringify(event)}\n`;
  return out;
}
