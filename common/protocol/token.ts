import { createHmac, timingSafeEqual } from 'node:crypto';
import { alias as aliasId, deviceId } from './ids.js';

/**
 * Device tokens: an HS256 JWT signed with the app's secret. Claims:
 *   iss = app id, sub = device id, aud = "pushgate-device", iat, exp (required),
 *   alias (optional): the alias the app server gives this device. Aliases are owned by the app
 *   server: a device has the alias its token names and no other (it cannot claim another
 *   device's alias by a frame).
 * The app's own backend mints them (it holds the secret); the gateway verifies them in hello.
 */
export const DEVICE_TOKEN_AUDIENCE = 'pushgate-device';

export interface DeviceTokenClaims {
  app: string;
  device: string;
  /** Expiry, seconds since epoch. */
  exp: number;
  /** The alias the app server bound to this device (null: none). */
  alias: string | null;
}

const encoder = new TextEncoder();

export async function signDeviceToken(
  secret: string,
  claims: { app: string; device: string; alias?: string; ttlSeconds?: number; exp?: number },
): Promise<string> {
  // Loaded on first use: the gateway only verifies (verifyDeviceTokenSync, below), and jose
  // adds about 8 MiB of RSS to a node process that loads it (measured alone; issue 15).
  const { SignJWT } = await import('jose');
  const now = Math.floor(Date.now() / 1000);
  const exp = claims.exp ?? now + (claims.ttlSeconds ?? 24 * 3600);
  return new SignJWT(claims.alias !== undefined ? { alias: claims.alias } : {})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(claims.app)
    .setSubject(claims.device)
    .setAudience(DEVICE_TOKEN_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(exp)
    .sign(encoder.encode(secret));
}

export type TokenCheck =
  | { ok: true; claims: DeviceTokenClaims }
  | { ok: false; reason: 'malformed' | 'unknown_app' | 'bad_signature' | 'expired' | 'invalid_claims' };

/**
 * Verifies a device token against the secrets of the known apps. `expectedApp` (from the
 * connect URL's `app` query parameter, when given) must match the token's app.
 *
 * Why not jose's jwtVerify here: it goes through WebCrypto (a key import and a thread-pool hop
 * per call, about 120-200 us and native allocations on the pool threads), and the gateway
 * verifies one token per connect, in connect storms. This is the same check, restricted to
 * what device tokens are: compact JWS, alg exactly HS256, HMAC compared in constant time, then
 * aud, iss, sub and exp (required). Tokens are still minted with jose (signDeviceToken), and
 * the unit tests check both against each other.
 */
export async function verifyDeviceToken(
  token: string,
  secretOf: (app: string) => string | undefined,
  expectedApp?: string,
  nowSeconds = Date.now() / 1000,
): Promise<TokenCheck> {
  return verifyDeviceTokenSync(token, secretOf, expectedApp, nowSeconds);
}

const HS256_HEADER_ALG = 'HS256';
/**
 * One token, one spelling: each part must be canonical unpadded base64url (RFC 7515 section 2).
 * Node's decoder skips `=`, whitespace and any stray character and ignores non-zero trailing
 * bits, so without this check many strings would verify as the same token (a token could not be
 * compared, logged or revoked by its text).
 */
function canonicalBase64url(part: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(part)) return undefined;
  const bytes = Buffer.from(part, 'base64url');
  return bytes.toString('base64url') === part ? bytes : undefined;
}

export function verifyDeviceTokenSync(
  token: string,
  secretOf: (app: string) => string | undefined,
  expectedApp?: string,
  nowSeconds = Date.now() / 1000,
): TokenCheck {
  const parts = token.split('.');
  if (parts.length !== 3) return { ok: false, reason: 'malformed' };
  const [h, p, sig] = parts as [string, string, string];
  const headerBytes = canonicalBase64url(h);
  const payloadBytes = canonicalBase64url(p);
  const given = canonicalBase64url(sig);
  if (!headerBytes || !payloadBytes || !given) return { ok: false, reason: 'malformed' };
  let header: { alg?: unknown; crit?: unknown };
  let payload: { iss?: unknown; sub?: unknown; aud?: unknown; exp?: unknown; nbf?: unknown; alias?: unknown };
  try {
    header = JSON.parse(headerBytes.toString('utf8')) as typeof header;
    payload = JSON.parse(payloadBytes.toString('utf8')) as typeof payload;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (typeof header !== 'object' || header === null || typeof payload !== 'object' || payload === null) {
    return { ok: false, reason: 'malformed' };
  }
  if (header.alg !== HS256_HEADER_ALG || header.crit !== undefined) return { ok: false, reason: 'malformed' };
  const app = payload.iss;
  if (typeof app !== 'string') return { ok: false, reason: 'malformed' };
  if (expectedApp !== undefined && expectedApp !== app) return { ok: false, reason: 'unknown_app' };
  const secret = secretOf(app);
  if (!secret) return { ok: false, reason: 'unknown_app' };
  const expected = createHmac('sha256', secret).update(`${h}.${p}`).digest();
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: 'bad_signature' };
  const aud = payload.aud;
  const audOk = aud === DEVICE_TOKEN_AUDIENCE || (Array.isArray(aud) && aud.includes(DEVICE_TOKEN_AUDIENCE));
  const device = payload.sub;
  const exp = payload.exp;
  const alias = payload.alias ?? null;
  if (
    !audOk ||
    typeof device !== 'string' ||
    !deviceId.safeParse(device).success ||
    typeof exp !== 'number' ||
    (alias !== null && (typeof alias !== 'string' || !aliasId.safeParse(alias).success))
  ) {
    return { ok: false, reason: 'invalid_claims' };
  }
  if (typeof payload.nbf === 'number' && payload.nbf > nowSeconds)
    return { ok: false, reason: 'invalid_claims' };
  if (exp <= nowSeconds) return { ok: false, reason: 'expired' };
  return { ok: true, claims: { app, device, exp, alias } };
}
