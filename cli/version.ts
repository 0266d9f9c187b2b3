import { createRequire } from 'node:module';
import { defineCommand } from './command.js';

const require = createRequire(import.meta.url);

export const versionCommand = defineCommand({
  name: 'version',
  summary: 'Print the pushgate version.',
  options: {},
  async run() {
    // package.json sits two levels up from both cli/ (tsx) and dist/cli/ (compiled).
    let pkg: { version: string };
    try {
      pkg = require('../package.json') as { version: string };
    } catch {
      pkg = require('../../package.json') as { version: string };
    }
    console.log(pkg.version);
  },
});
