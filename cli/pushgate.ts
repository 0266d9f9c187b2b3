#!/usr/bin/env node
import { ConfigError, helpText, parseConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { commands, loadAllCommands } from './commands.js';

async function usage(): Promise<string> {
  const all = await loadAllCommands();
  const width = Math.max(...all.map((c) => c.name.length));
  return [
    'Usage: pushgate <command> [flags]',
    '',
    'Commands:',
    ...all.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `pushgate <command> --help` for the flags of one command.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(await usage());
    return name ? 0 : 2;
  }
  const load = commands.get(name);
  if (!load) {
    console.error(`pushgate: unknown command '${name}'; one of: ${[...commands.keys()].join(', ')}`);
    return 2;
  }
  const command = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(helpText(command.name, command.summary, command.options));
    return 0;
  }
  let config;
  try {
    config = parseConfig(command.options, rest);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`pushgate ${command.name}: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(command.name);
  try {
    await command.run(config, log);
    return 0;
  } catch (err) {
    log.fatal({ err }, `${command.name} failed`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
