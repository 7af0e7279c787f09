/**
 * A line for the operator from core code, with its level as data: renderers print `message` as it is (plain, or in
 * a JSON log record at `level`) and never read the level back out of the text.
 */
export interface Notice {
  readonly level: 'info' | 'warn' | 'error';
  /** The line as printed, after the `regmigrate: ` prefix. */
  readonly message: string;
}

export type OnNotice = (notice: Notice) => void;
