import { formatBytes } from './output';

/**
 * Progress of long work (gc, fsck, import) on stderr: a bar redrawn in place
 * on a terminal, plain lines at a slower pace otherwise (logs, pipes, CI),
 * so that stdout stays free for results and --json.
 *
 *   const progress = createProgress('verifying blobs', { total: blobs.length });
 *   for (const blob of blobs) { await verify(blob); progress.advance(); }
 *   progress.done('2 problems');
 */
export interface Progress {
  /** Counts n more units of work (items, or bytes with bytes: true). */
  advance(n?: number): void;
  /** Ends the display with an optional summary; further calls do nothing. */
  done(summary?: string): void;
}

export interface ProgressOptions {
  /** Units of work expected; unknown when omitted (then only the count is shown). */
  total?: number;
  /** Count bytes rather than items. */
  bytes?: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Least time between two plain lines. */
  lineIntervalMs?: number;
}

const REDRAW_MS = 100;
const BAR_WIDTH = 30;

export function createProgress(label: string, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const interval = tty ? REDRAW_MS : (options.lineIntervalMs ?? 5000);
  const { total } = options;
  const unit = (n: number): string => (options.bytes ? formatBytes(n) : String(n));
  let count = 0;
  let last = Date.now();
  let finished = false;

  const describe = (): string => {
    if (total === undefined || total <= 0) return `${label}: ${unit(count)}`;
    const fraction = Math.min(1, count / total);
    const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
    if (!tty) return `${label}: ${unit(count)}/${unit(total)} (${percent.trim()})`;
    const filled = Math.round(fraction * BAR_WIDTH);
    return `${label} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${percent} ${unit(count)}/${unit(total)}`;
  };
  // \r and "erase to end of line" redraw the bar in place.
  const draw = (): void => {
    stream.write(tty ? `\r${describe().slice(0, (stream.columns ?? 80) - 1)}\x1b[K` : `${describe()}\n`);
  };

  if (tty) draw();
  return {
    advance(n = 1) {
      if (finished) return;
      count += n;
      const now = Date.now();
      if (now - last >= interval) {
        last = now;
        draw();
      }
    },
    done(summary) {
      if (finished) return;
      finished = true;
      const text = `${describe()}${summary ? ` - ${summary}` : ''}`;
      stream.write(tty ? `\r${text}\x1b[K\n` : `${text}\n`);
    },
  };
}
