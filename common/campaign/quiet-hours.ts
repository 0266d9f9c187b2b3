/**
 * Quiet hours of a campaign (plan.quietHours): a daily window in a time zone during which
 * nothing is sent. Pure: the caller passes the time (the dispatcher's injectable Clock), so
 * tests set it.
 */

export interface QuietHours {
  /** IANA time zone, e.g. Asia/Shanghai. */
  timeZone: string;
  /** HH:MM (24 h), local time: quiet from here... */
  start: string;
  /** ...until here (exclusive). start > end spans midnight (22:00-07:00); start == end is no window. */
  end: string;
}

export interface QuietDecision {
  quiet: boolean;
  /** While quiet: ms until the window ends (sending resumes). */
  resumeInMs?: number;
}

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

export class QuietHoursError extends Error {
  override name = 'QuietHoursError';
}

function minutesOf(hhmm: string, field: string): number {
  const m = HHMM.exec(hhmm);
  if (!m) throw new QuietHoursError(`quietHours.${field}: '${hhmm}' is not HH:MM (00:00 to 23:59)`);
  return Number(m[1]) * 60 + Number(m[2]);
}

const formats = new Map<string, Intl.DateTimeFormat>();
function formatFor(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-GB', {
        timeZone,
        hourCycle: 'h23',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
      });
    } catch {
      throw new QuietHoursError(`quietHours.timeZone: unknown time zone '${timeZone}'`);
    }
    formats.set(timeZone, f);
  }
  return f;
}

/** Milliseconds since local midnight in `timeZone` at `now`. */
export function localTimeOfDayMs(now: number, timeZone: string): number {
  const parts = formatFor(timeZone).formatToParts(new Date(now));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? 0);
  return ((get('hour') * 60 + get('minute')) * 60 + get('second')) * 1000 + (((now % 1000) + 1000) % 1000);
}

/** Throws QuietHoursError for a bad time zone or time. */
export function validateQuietHours(q: QuietHours): void {
  minutesOf(q.start, 'start');
  minutesOf(q.end, 'end');
  formatFor(q.timeZone);
}

/**
 * Whether `now` falls in the window, and if so how long until it ends. Local wall-clock time,
 * so a DST change moves the window with the clocks (the resume estimate can then be off by the
 * shift; the dispatcher asks again every pass).
 */
export function quietAt(now: number, q: QuietHours): QuietDecision {
  const start = minutesOf(q.start, 'start') * 60_000;
  const end = minutesOf(q.end, 'end') * 60_000;
  if (start === end) return { quiet: false };
  const t = localTimeOfDayMs(now, q.timeZone);
  const day = 24 * 3600_000;
  const quiet = start < end ? t >= start && t < end : t >= start || t < end;
  if (!quiet) return { quiet: false };
  return { quiet: true, resumeInMs: (end - t + day) % day };
}
