import * as z from 'zod';

/** One image of a push or sync report (`--report FILE.json`, report/push-report.ts): the fields the map needs. */
export const ReportImage = z.looseObject({
  source: z.string(),
  destination: z.string().nullable(),
  digest: z.string().nullable(),
  status: z.string(),
  reason: z.string().nullable().optional(),
  convertedTo: z.string().nullable().optional(),
});

export const PushReport = z.looseObject({
  kind: z.literal('regmigrate.push'),
  destination: z.string(),
  destinationUrl: z.string().optional(),
  images: z.array(ReportImage),
});
export type PushReport = z.infer<typeof PushReport>;

/** The sync journal (`--state`, sync/sync-state.ts): destination `repo:tag` → what was verified there. */
export const JournalEntry = z.looseObject({
  source: z.string(),
  digest: z.string(),
  destinationDigest: z.string().nullable().optional(),
});

export const SyncJournal = z.looseObject({
  kind: z.literal('regmigrate.sync-state'),
  destination: z.string(),
  destinationUrl: z.string().optional(),
  tags: z.record(z.string(), JournalEntry),
});
export type SyncJournal = z.infer<typeof SyncJournal>;
