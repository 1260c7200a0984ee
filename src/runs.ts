import { createHash } from 'node:crypto';
import { isoTimestamp } from './timestamps.js';
import { toNano, toUsd } from './limits/store.js';
import type { OutcomeEvent, RunOutcome, UsageEvent } from './event.js';

/** Runs remembered at once: far more than a process has open; past it the oldest is forgotten (and counted). */
export const MAX_RUNS = 10_000;

interface RunTally {
  tenantId: string | undefined;
  costNano: number;
  calls: number;
  feature: string | undefined;
  agentId: string | undefined;
  metricCode: string | undefined;
  /** Its revenue is in the ledger: a second resolve in this process books nothing. */
  resolved: boolean;
}

/** The same id wherever and however often a run is resolved: hex of a hash of the run id, shaped as a UUID. */
export function outcomeEventId(runId: string): string {
  const hex = createHash('sha256').update(`llm-meter outcome\0${runId}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** The cost and count of each run's calls this process recorded, until the run is resolved (and a while after). */
export class RunTallies {
  private readonly runs = new Map<string, RunTally>();
  /** Runs forgotten to keep the memory bounded. */
  forgotten = 0;

  add(event: UsageEvent): void {
    const runId = event.run_id;
    if (runId === undefined) return;
    const tally = this.tally(runId, event.tenant_id);
    tally.costNano += toNano(event.cost_usd ?? 0);
    tally.calls++;
    tally.feature ??= event.feature;
    tally.agentId ??= event.agent_id;
    tally.metricCode ??= event.metric_code;
  }

  /**
   * The run's outcome event, and whether its revenue is still to be booked (the first resolve of the run in this
   * process). `tenantId` defaults to the tenant of the run's calls.
   */
  resolve(runId: string, tenantId: string | undefined, outcome: RunOutcome, revenueUsd: number): { event: OutcomeEvent; first: boolean } {
    const tally = this.tally(runId, tenantId);
    const first = !tally.resolved;
    tally.resolved = true;
    const event: OutcomeEvent = {
      type: 'outcome',
      event_id: outcomeEventId(runId),
      run_id: runId,
      outcome,
      revenue_usd: toUsd(toNano(revenueUsd)),
      cost_usd: toUsd(tally.costNano),
      calls: tally.calls,
      timestamp: isoTimestamp(Date.now()),
    };
    const tenant = tenantId ?? tally.tenantId;
    if (tenant !== undefined) event.tenant_id = tenant;
    if (tally.feature !== undefined) event.feature = tally.feature;
    if (tally.agentId !== undefined) event.agent_id = tally.agentId;
    if (tally.metricCode !== undefined) event.metric_code = tally.metricCode;
    return { event, first };
  }

  private tally(runId: string, tenantId: string | undefined): RunTally {
    let tally = this.runs.get(runId);
    if (tally === undefined) {
      if (this.runs.size >= MAX_RUNS) {
        this.runs.delete(this.runs.keys().next().value as string);
        this.forgotten++;
      }
      tally = { tenantId, costNano: 0, calls: 0, feature: undefined, agentId: undefined, metricCode: undefined, resolved: false };
      this.runs.set(runId, tally);
    }
    tally.tenantId ??= tenantId;
    return tally;
  }
}
