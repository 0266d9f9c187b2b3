import { generate } from 'selfsigned';
import { isIP } from 'node:net';
import { readFile } from 'node:fs/promises';
import type { ServingCert } from './server.js';

/**
 * A self-signed serving certificate made at start (P-256, one year) for the names the
 * aggregator dials: `<service>.<namespace>.svc` of the APIService's Service, plus localhost.
 * The APIService then carries this certificate as its caBundle (the operator reads it from
 * the adapter's Secret) or sets insecureSkipTLSVerify; see README.md for what each trusts.
 */
export async function generateServingCert(sans: string[]): Promise<ServingCert> {
  const names = sans.length > 0 ? sans : ['localhost'];
  const pems = await generate([{ name: 'commonName', value: names[0]! }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 365 * 24 * 3600_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: names.map((n) => (isIP(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })),
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** Certificate files when given (a Secret mounted by the operator), else a fresh self-signed one. */
export async function loadServingCert(
  certFile: string,
  keyFile: string,
  sans: string[],
): Promise<ServingCert> {
  if (certFile || keyFile) {
    if (!certFile || !keyFile) throw new Error('--tls-cert-file and --tls-key-file go together');
    return { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
  }
  return generateServingCert(sans);
}
