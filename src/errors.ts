/**
 * The few error classes regmigrate throws. Each carries a stable `code` (for scripts and tests to branch on)
 * and the process exit code it maps to (docs/architecture.md, Exit codes). Branch on `code`, not on `message` (the two exceptions are in
 * docs/architecture.md, Error model).
 */
export type ErrorCode =
  | 'USAGE'
  | 'NOT_A_STORAGE'
  | 'DESTINATION_UNREACHABLE'
  | 'AUTH_REFUSED'
  | 'PROJECT_CREATE_DENIED'
  | 'PERMISSION_DENIED'
  | 'READ_ONLY'
  | 'REGISTRY'
  | 'TOOL_MISSING'
  | 'LOCKED'
  | 'OUTPUT'
  | 'INTERNAL';

export class RegmigrateError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { exitCode: number; hint?: string; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options.exitCode;
    this.hint = options.hint;
  }
}

/** Bad command line, bad config, or a path that is not a registry storage: exit 2. */
export class UsageError extends RegmigrateError {
  constructor(message: string, hint?: string, code: ErrorCode = 'USAGE') {
    super(code, message, { exitCode: 2, hint });
  }
}

/** The destination cannot be reached or refuses our credentials before any work: exit 3. */
export class DestinationError extends RegmigrateError {
  constructor(code: 'DESTINATION_UNREACHABLE' | 'AUTH_REFUSED' | 'PROJECT_CREATE_DENIED' | 'PERMISSION_DENIED' | 'READ_ONLY', message: string, hint?: string, cause?: unknown) {
    super(code, message, { exitCode: 3, hint, cause });
  }
}

/** A required external tool (skopeo) is missing or too old: exit 2. */
export class ToolError extends RegmigrateError {
  constructor(message: string, hint?: string) {
    super('TOOL_MISSING', message, { exitCode: 2, hint });
  }
}

/** Another sync holds the lock: exit 4, so monitoring can tell "skipped, still running" from a failure. */
export class LockedError extends RegmigrateError {
  constructor(message: string, hint?: string) {
    super('LOCKED', message, { exitCode: 4, hint });
  }
}

/** The status of a run whose results (report, journal, metrics, standard output) could not be written. */
export const OUTPUT_EXIT = 5;

/**
 * The work is done but its results (report, journal, metrics) could not be written: exit 5, so a cron job tells it
 * from failed images. What could be printed was printed first.
 */
export class OutputError extends RegmigrateError {
  constructor(message: string, hint = 'the transfer itself finished; the image list was printed to stdout above') {
    super('OUTPUT', message, { exitCode: OUTPUT_EXIT, hint });
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
