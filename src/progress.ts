/**
 * Progress of a long operation (`huptime --restart`): on a terminal one line per operation that
 * is rewritten in place as steps happen; otherwise one plain line per step. Writes to stderr.
 */

/** Reports the steps of one operation. */
export class Progress {
  private steps: string[] = [];
  private readonly live: boolean;

  /** `label` starts each line ("huptime: 1234"); `live` forces (or stops) the updating line. */
  constructor(
    private readonly label: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
    live?: boolean,
  ) {
    this.live = live ?? Boolean(out.isTTY);
  }

  /** A step happened. */
  step(text: string): void {
    this.steps.push(text);
    if (this.live) {
      const width = (this.out.columns || 100) - 1;
      let line = `${this.label}: ${this.steps.join(" → ")}`;
      if (line.length > width) line = `${this.label}: …${line.slice(line.length - width + this.label.length + 3)}`;
      this.out.write(`\r\x1b[K${line}`);
    } else {
      this.out.write(`${this.label}: ${text}\n`);
    }
  }

  /** Ends the updating line (the summary follows on its own line). */
  end(): void {
    if (this.live && this.steps.length) this.out.write("\r\x1b[K");
  }
}
