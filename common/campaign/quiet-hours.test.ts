import { describe, expect, it } from 'vitest';
import { localTimeOfDayMs, quietAt, QuietHoursError, validateQuietHours } from './quiet-hours.js';

const utc = (iso: string) => Date.parse(`${iso}Z`);

describe('quiet hours', () => {
  it('a same-day window: quiet inside, not at its end, resume estimate', () => {
    const q = { timeZone: 'UTC', start: '12:00', end: '14:00' };
    expect(quietAt(utc('2026-11-30T11:59:59'), q)).toEqual({ quiet: false });
    expect(quietAt(utc('2026-11-30T12:00:00'), q)).toEqual({ quiet: true, resumeInMs: 2 * 3600_000 });
    expect(quietAt(utc('2026-11-30T13:59:00'), q)).toEqual({ quiet: true, resumeInMs: 60_000 });
    expect(quietAt(utc('2026-11-30T14:00:00'), q)).toEqual({ quiet: false });
  });

  it('an overnight window spans midnight', () => {
    const q = { timeZone: 'UTC', start: '22:00', end: '07:00' };
    expect(quietAt(utc('2026-11-30T21:59:59'), q).quiet).toBe(false);
    expect(quietAt(utc('2026-11-30T22:00:00'), q)).toEqual({ quiet: true, resumeInMs: 9 * 3600_000 });
    expect(quietAt(utc('2026-12-01T03:30:00'), q)).toEqual({ quiet: true, resumeInMs: 3.5 * 3600_000 });
    expect(quietAt(utc('2026-12-01T07:00:00'), q).quiet).toBe(false);
    expect(quietAt(utc('2026-12-01T12:00:00'), q).quiet).toBe(false);
  });

  it('in the time zone given, not UTC', () => {
    // 22:00-07:00 in Shanghai (UTC+8) is 14:00-23:00 UTC.
    const q = { timeZone: 'Asia/Shanghai', start: '22:00', end: '07:00' };
    expect(quietAt(utc('2026-11-30T13:59:00'), q).quiet).toBe(false);
    expect(quietAt(utc('2026-11-30T14:00:00'), q).quiet).toBe(true);
    expect(quietAt(utc('2026-11-30T22:59:00'), q)).toEqual({ quiet: true, resumeInMs: 60_000 });
    expect(quietAt(utc('2026-11-30T23:00:00'), q).quiet).toBe(false);
    expect(localTimeOfDayMs(utc('2026-11-30T16:00:00.250'), 'Asia/Shanghai')).toBe(250);
  });

  it('start == end is no window; bad input is refused with the field', () => {
    expect(quietAt(utc('2026-11-30T10:00:00'), { timeZone: 'UTC', start: '10:00', end: '10:00' }).quiet).toBe(
      false,
    );
    expect(() => validateQuietHours({ timeZone: 'Mars/Olympus', start: '22:00', end: '07:00' })).toThrow(
      /timeZone/,
    );
    expect(() => validateQuietHours({ timeZone: 'UTC', start: '24:00', end: '07:00' })).toThrow(
      QuietHoursError,
    );
    expect(() => quietAt(0, { timeZone: 'UTC', start: '22:00', end: '7:00' })).toThrow(/quietHours.end/);
  });
});
