import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, helpText, opt, parseConfig } from './config.js';

const specs = {
  port: { schema: opt.port(8080), description: 'Port to listen on.' },
  region: { schema: z.string().min(1), description: 'Region name.' },
  drainClosesPerSecond: { schema: opt.positiveInt(500), description: 'Closes per second while draining.' },
  tls: { schema: z.boolean().default(false), description: 'Serve TLS.' },
  apps: { schema: z.array(z.string()).default([]), description: 'App ids.' },
  secret: { schema: z.string().min(8).optional(), description: 'A secret.', secret: true },
};

describe('parseConfig', () => {
  it('reads flags, then environment, then defaults', () => {
    const cfg = parseConfig(specs, ['--region', 'cn-east-1', '--tls'], {
      PUSHGATE_PORT: '9000',
      PUSHGATE_APPS: 'a, b',
    });
    expect(cfg).toEqual({
      port: 9000,
      region: 'cn-east-1',
      drainClosesPerSecond: 500,
      tls: true,
      apps: ['a', 'b'],
      secret: undefined,
    });
  });

  it('lets a flag win over the environment, and accepts --name=value and --no-name', () => {
    const cfg = parseConfig(specs, ['--port=7000', '--region=x', '--no-tls'], {
      PUSHGATE_PORT: '9000',
      PUSHGATE_TLS: 'true',
    });
    expect(cfg.port).toBe(7000);
    expect(cfg.tls).toBe(false);
  });

  it.each([
    [['--region', 'r', '--port', 'abc'], {}, /invalid --port \(PUSHGATE_PORT\).*got 'abc'/],
    [['--region', 'r', '--port', '70000'], {}, /invalid --port \(PUSHGATE_PORT\).*got '70000'/],
    [
      ['--region', 'r'],
      { PUSHGATE_DRAIN_CLOSES_PER_SECOND: '0' },
      /invalid --drain-closes-per-second \(PUSHGATE_DRAIN_CLOSES_PER_SECOND\)/,
    ],
    [[], {}, /invalid --region \(PUSHGATE_REGION\).*got nothing/],
    [['--region', 'r', '--tls', '--bogus'], {}, /unknown flag --bogus/],
    [['--region'], {}, /flag --region needs a value/],
    [['region'], {}, /unexpected argument 'region'/],
    [['--region', 'r', '--tls=maybe'], {}, /invalid --tls \(PUSHGATE_TLS\)/],
  ])('rejects %j %j with one line naming the setting', (argv, env, message) => {
    expect(() => parseConfig(specs, argv, env)).toThrow(ConfigError);
    expect(() => parseConfig(specs, argv, env)).toThrow(message);
  });

  it('never prints a secret value in an error', () => {
    expect(() => parseConfig(specs, ['--region', 'r', '--secret', 'short'])).toThrow(/got <hidden>/);
  });

  it('documents every flag, its variable and its default in --help', () => {
    const help = helpText('gateway', 'Runs a gateway.', specs);
    expect(help).toContain('--drain-closes-per-second  [PUSHGATE_DRAIN_CLOSES_PER_SECOND]');
    expect(help).toContain('(default: 500)');
    expect(help).not.toMatch(/secret.*default/);
  });
});
