/**
 * A command that stops making progress must not pass for one that finished. Node exits, with `process.exitCode`
 * (0 unless set), when its event loop has nothing left to do, even while promises still wait: work queued for a
 * wake-up nobody will give is not work to the event loop. `guardDrain` (cli/main.ts) watches for that moment
 * (`beforeExit`) while a command runs: it saves what can be saved, says in one line what the command still waited
 * for, and the process exits 70 (a bug).
 */
import { errorMessage } from '../errors.js';
import { runCleanups } from '../util/cleanup.js';

/** What a running command says of itself, should it stall: where it is, what it waits for, what to save. */
export class RunWatch {
  #stage: string | undefined;
  readonly #details: Array<() => string | undefined> = [];
  readonly #savers: Array<() => string | undefined> = [];

  /** Where the command is, in a few words (`batch 2 of 3, 5 of 20 images done`). */
  stage(text: string): void {
    this.#stage = text;
  }

  /** A part of the line, read when it is written (what waits at the destination). */
  detail(describe: () => string | undefined): void {
    this.#details.push(describe);
  }

  /** Saves something (the report) should the command stall; says what it saved, or throws why it could not. */
  onStall(save: () => string | undefined): void {
    this.#savers.push(save);
  }

  /** What the command waited for, and what was saved (or not): the parts of the one line. */
  stalled(): { waiting: string; saved: string[] } {
    const waiting = [this.#stage, ...this.#details.map((d) => d())].filter(Boolean).join('; ');
    const saved: string[] = [];
    for (const save of this.#savers) {
      try {
        const what = save();
        if (what) saved.push(what);
      } catch (err) {
        saved.push(`not saved: ${errorMessage(err)}`);
      }
    }
    return { waiting, saved };
  }
}

/**
 * While `command` runs: when the event loop drains under it, `say` gets the line, then the process exits 70.
 * Returns the way to stop watching (the command ended).
 */
export function guardDrain(command: string, watch: RunWatch, say: (line: string) => void): () => void {
  let told = false;
  const onDrain = (): void => {
    // Saving and saying may schedule writes; the loop then drains again, and the process exits with 70 after them.
    if (told) return;
    told = true;
    const { waiting, saved } = watch.stalled();
    // What must go however the process ends (the skopeo authfile holds the password).
    runCleanups();
    say(`${command} stopped before it was done: nothing was left that could wake what it waited for${waiting ? ` (${waiting})` : ''}${saved.length ? `; ${saved.join('; ')}` : ''}; exit 70: this is a bug, please report it`);
    process.exitCode = 70;
  };
  process.on('beforeExit', onDrain);
  return () => process.off('beforeExit', onDrain);
}

/** The name of the command argv runs, for the line (`push`, `sync`, …). */
export function commandName(argv: readonly string[]): string {
  return argv[2] !== undefined && !argv[2].startsWith('-') ? argv[2] : 'regmigrate';
}
