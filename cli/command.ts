import type { OptionSpecs, ConfigOf } from '../common/config.js';
import type { Logger } from '../common/logger.js';

/**
 * One program of the single `pushgate` binary. `run` resolves when the program has stopped
 * (for servers: after a graceful shutdown on SIGTERM/SIGINT).
 */
export interface Command<S extends OptionSpecs = OptionSpecs> {
  name: string;
  summary: string;
  options: S;
  run(config: ConfigOf<S>, log: Logger): Promise<void>;
}

export function defineCommand<S extends OptionSpecs>(command: Command<S>): Command<S> {
  return command;
}

/** Resolves on the first SIGTERM or SIGINT; servers await it and then shut down. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const done = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      resolve(sig);
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
  });
}
