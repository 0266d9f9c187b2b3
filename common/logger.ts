import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One structured logger per process. JSON to stdout (what log collectors expect); set
 * PUSHGATE_LOG_LEVEL to change verbosity. Components take a child logger with `component`.
 */
export function createLogger(component: string, level = process.env.PUSHGATE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything: for unit tests that do not assert on logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
