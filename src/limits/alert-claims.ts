import type { SpendWindow } from './windows.js';

/** The alerts this process sent, per current window: each threshold of a tenant's window once. */
export class AlertClaims {
  /** window key → `tenant \0 threshold`; a window's set goes once a newer window of its frequency is claimed in. */
  private readonly sent = new Map<string, Set<string>>();

  claim(tenantId: string, window: SpendWindow, threshold: number): boolean {
    let sent = this.sent.get(window.key);
    if (sent === undefined) {
      const prefix = window.key.slice(0, 2);
      for (const key of this.sent.keys()) if (key.startsWith(prefix)) this.sent.delete(key);
      this.sent.set(window.key, (sent = new Set()));
    }
    const alert = `${tenantId}\0${threshold}`;
    if (sent.has(alert)) return false;
    sent.add(alert);
    return true;
  }
}
