/** What a report says beside its groups: the period asked for (as given) and the lines it could not read. */
export interface ReportContext {
  from: string | undefined;
  to: string | undefined;
  skippedLines: number;
}
