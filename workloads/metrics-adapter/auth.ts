import * as k8s from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { status, type Status } from './api.js';

/**
 * How the aggregation layer proves who is calling (Kubernetes docs, "Configure the
 * Aggregation Layer" → "Extension Apiserver Authenticates the Request"):
 *   1. kube-apiserver connects with its proxy client certificate (--proxy-client-cert-file),
 *      signed by the request-header client CA (--requestheader-client-ca-file);
 *   2. the certificate's CN must be one of --requestheader-allowed-names (empty = any CN the
 *      CA signed);
 *   3. the original caller, already authenticated and authorized by kube-apiserver for this
 *      path, travels in the --requestheader-username-headers / -group-headers /
 *      -extra-headers-prefix headers (X-Remote-User, X-Remote-Group, X-Remote-Extra-*).
 * kube-apiserver publishes all of it in the ConfigMap kube-system/extension-apiserver-authentication.
 * The identity headers are believed only on a connection whose certificate passed 1 and 2;
 * anyone else could write them.
 */
export interface RequestHeaderConfig {
  clientCA: string;
  allowedNames: string[];
  usernameHeaders: string[];
  groupHeaders: string[];
  extraHeaderPrefixes: string[];
}

export const AUTH_CONFIGMAP = { namespace: 'kube-system', name: 'extension-apiserver-authentication' };

function jsonList(data: Record<string, string>, key: string, fallback: string[]): string[] {
  const raw = data[key];
  if (raw === undefined || raw === '') return fallback;
  const parsed: unknown = JSON.parse(raw);
  if (!Array.isArray(parsed) || !parsed.every((v) => typeof v === 'string')) {
    throw new Error(`${AUTH_CONFIGMAP.name} ${key} is not a JSON list of strings`);
  }
  return parsed;
}

/** Reads the request-header settings from the ConfigMap data (keys as kube-apiserver writes them). */
export function requestHeaderConfigFromConfigMap(data: Record<string, string>): RequestHeaderConfig {
  const clientCA = data['requestheader-client-ca-file'];
  if (!clientCA) {
    throw new Error(
      `${AUTH_CONFIGMAP.namespace}/${AUTH_CONFIGMAP.name} has no requestheader-client-ca-file: kube-apiserver runs without the aggregation layer's front proxy (--requestheader-client-ca-file)`,
    );
  }
  return {
    clientCA,
    allowedNames: jsonList(data, 'requestheader-allowed-names', []),
    usernameHeaders: jsonList(data, 'requestheader-username-headers', ['X-Remote-User']),
    groupHeaders: jsonList(data, 'requestheader-group-headers', ['X-Remote-Group']),
    extraHeaderPrefixes: jsonList(data, 'requestheader-extra-headers-prefix', ['X-Remote-Extra-']),
  };
}

export async function loadRequestHeaderConfig(
  kc: k8s.KubeConfig,
  overrides: { clientCAFile?: string; allowedNames?: string[] },
): Promise<RequestHeaderConfig> {
  if (overrides.clientCAFile) {
    return {
      clientCA: await readFile(overrides.clientCAFile, 'utf8'),
      allowedNames: overrides.allowedNames ?? [],
      usernameHeaders: ['X-Remote-User'],
      groupHeaders: ['X-Remote-Group'],
      extraHeaderPrefixes: ['X-Remote-Extra-'],
    };
  }
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const cm = await core.readNamespacedConfigMap(AUTH_CONFIGMAP);
  const config = requestHeaderConfigFromConfigMap(cm.data ?? {});
  return overrides.allowedNames?.length ? { ...config, allowedNames: overrides.allowedNames } : config;
}

export interface CallerTls {
  /** Whether the TLS layer verified the peer certificate against the client CA. */
  authorized: boolean;
  authorizationError?: string;
  /** Subject CN of the peer certificate, if one was sent. */
  commonName?: string;
}

export interface Caller {
  user: string;
  groups: string[];
  extra: Record<string, string[]>;
  /** CN of the front proxy that vouched for the user. */
  proxy: string;
}

export type AuthResult = { ok: true; caller: Caller } | { ok: false; status: Status };

const headerValues = (headers: Record<string, string | string[] | undefined>, name: string): string[] => {
  const v = headers[name.toLowerCase()];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).filter((s) => s !== '');
};

/** Decides who is calling, per the rules above; pure, so each rule has a table test. */
export function authenticate(
  tls: CallerTls,
  headers: Record<string, string | string[] | undefined>,
  config: RequestHeaderConfig,
): AuthResult {
  const deny = (why: string): AuthResult => ({
    ok: false,
    status: status(401, 'Unauthorized', `Unauthorized: ${why}`),
  });
  if (!tls.commonName)
    return deny('no client certificate; only the aggregation layer (front proxy) may call this API');
  if (!tls.authorized) {
    return deny(
      `client certificate not signed by the request-header client CA (${tls.authorizationError ?? 'unverified'})`,
    );
  }
  if (config.allowedNames.length > 0 && !config.allowedNames.includes(tls.commonName)) {
    return deny(`client certificate CN '${tls.commonName}' is not one of the request-header allowed names`);
  }
  const user = config.usernameHeaders.map((h) => headerValues(headers, h)[0]).find((v) => v !== undefined);
  if (!user) return deny(`the front proxy sent no user (${config.usernameHeaders.join(', ')})`);
  const groups = config.groupHeaders.flatMap((h) => headerValues(headers, h));
  const extra: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    for (const prefix of config.extraHeaderPrefixes) {
      if (name.toLowerCase().startsWith(prefix.toLowerCase()) && value !== undefined) {
        const key = decodeURIComponent(name.slice(prefix.length)).toLowerCase();
        extra[key] = [...(extra[key] ?? []), ...(Array.isArray(value) ? value : [value])];
      }
    }
  }
  return { ok: true, caller: { user, groups, extra, proxy: tls.commonName } };
}
