import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppsConfigError, loadApps, parseAppsList } from './apps.js';

describe('app secrets', () => {
  it('reads a file of lines, a Secret directory and the inline list; later sources win', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'apps-'));
    writeFileSync(
      path.join(dir, 'lines'),
      '# comment\napp1:secret-one-0123456789\n\napp2 : secret-two-0123456789\n',
    );
    const secretDir = path.join(dir, 'secret');
    mkdirSync(secretDir);
    writeFileSync(path.join(secretDir, 'app3'), 'secret-three-0123456789\n');
    writeFileSync(path.join(secretDir, '..data'), 'ignored');
    expect([...loadApps({ file: path.join(dir, 'lines'), inline: 'app2:secret-inline-0123456' })]).toEqual([
      ['app1', 'secret-one-0123456789'],
      ['app2', 'secret-inline-0123456'],
    ]);
    expect([...loadApps({ file: secretDir })]).toEqual([['app3', 'secret-three-0123456789']]);
  });
  it.each([
    ['app1', /expected app:secret/],
    ['app 1:secret-0123456789abc', /bad app id/],
    ['app1:short', /shorter than 16/],
  ])('rejects %j', (text, message) => {
    expect(() => parseAppsList(text, 'test')).toThrow(AppsConfigError);
    expect(() => parseAppsList(text, 'test')).toThrow(message);
  });
});
