import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { appId } from '../common/protocol/ids.js';

/**
 * App ids and their secrets. The secret signs device tokens and authenticates the push API.
 * Sources: a file of `app:secret` lines (# comments), a directory with one file per app
 * (a Kubernetes Secret mounted as a volume: key = app id, value = secret), and an inline
 * `app1:secret1,app2:secret2` string (env PUSHGATE_APPS). Later sources win.
 */
export type AppSecrets = ReadonlyMap<string, string>;

export class AppsConfigError extends Error {
  override name = 'AppsConfigError';
}

function add(out: Map<string, string>, app: string, secret: string, where: string) {
  if (!appId.safeParse(app).success) throw new AppsConfigError(`${where}: bad app id '${app}'`);
  if (secret.length < 16)
    throw new AppsConfigError(`${where}: secret of app '${app}' is shorter than 16 characters`);
  out.set(app, secret);
}

export function parseAppsList(
  text: string,
  where: string,
  out = new Map<string, string>(),
): Map<string, string> {
  for (const raw of text.split(/[\n,]/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i <= 0) throw new AppsConfigError(`${where}: expected app:secret, got '${line.slice(0, 20)}'`);
    add(out, line.slice(0, i).trim(), line.slice(i + 1).trim(), where);
  }
  return out;
}

export function loadApps(opts: { file?: string; inline?: string }): Map<string, string> {
  const out = new Map<string, string>();
  if (opts.file) {
    const st = statSync(opts.file);
    if (st.isDirectory()) {
      for (const name of readdirSync(opts.file)) {
        if (name.startsWith('.')) continue; // the ..data symlinks of a mounted Secret
        const p = path.join(opts.file, name);
        if (statSync(p).isFile()) add(out, name, readFileSync(p, 'utf8').trim(), p);
      }
    } else {
      parseAppsList(readFileSync(opts.file, 'utf8'), opts.file, out);
    }
  }
  if (opts.inline) parseAppsList(opts.inline, 'PUSHGATE_APPS', out);
  return out;
}
