/**
 * An error meant for the user: its message is one line naming the file, the place in it and
 * what is wrong. The CLI prints `error: <message>` and exits non-zero; anything else is a bug
 * and gets a stack trace.
 */
export class GrerankError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GrerankError';
  }
}

/** Checkpoint contents that do not match the architecture the loader expects. */
export class CheckpointError extends GrerankError {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}
