/**
 * Progress of long operator waits (a learner catching up, a leadership
 * transfer) on stderr, so stdout stays the command's result: a bar redrawn in
 * place on a terminal, else one line at most every LINE_INTERVAL_MS. Owns
 * drawing only; must never write to stdout.
 */
const BAR_WIDTH_CHARS = 30;
const LINE_INTERVAL_MS = 1_000;

export class ProgressBar {
  private lastLineAtMs = -Infinity;
  private drawn = false;

  constructor(private readonly label: string, private readonly stream: NodeJS.WriteStream = process.stderr) {}

  /** `done` of `total` (clamped to 0..total), with a note after the bar. */
  update(done: number, total: number, note: string): void {
    const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
    const filled = Math.round(fraction * BAR_WIDTH_CHARS);
    const text = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH_CHARS - filled)}] ${Math.floor(fraction * 100)}% ${note}`;
    if (this.stream.isTTY) {
      this.stream.write(`\r${text}\x1b[K`);
      this.drawn = true;
      return;
    }
    const now = Date.now();
    if (now - this.lastLineAtMs < LINE_INTERVAL_MS) return;
    this.lastLineAtMs = now;
    this.stream.write(`${text}\n`);
  }

  /** Ends the bar with a final line. */
  finish(note: string): void {
    this.stream.write(`${this.drawn ? '\r\x1b[K' : ''}${this.label}: ${note}\n`);
    this.drawn = false;
  }
}
