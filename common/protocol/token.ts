import { SignJWT, jwtVerify, errors } from 'jose';

/**
 * Device tokens: an HS256 JWT signed with the app's secret. Claims:
 *   iss = app id, sub = device id, aud = "pushgate-device", iat, exp (required).
 * The app's own backend mints them (it holds the secret); the gateway verifies them in hello.
 */
export const DEVICE_TOKEN_AUDIENCE = 'pushgate-device';

export interface DeviceTokenClaims {
  app: string;
  device: string;
  /** Expiry, seconds since epoch. */
  exp: number;
}

const encoder = new TextEncoder();

export async function signDeviceToken(
  secret: string,
  claims: { app: string; device: string; ttlSeconds?: number; exp?: number },
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const exp = claims.exp ?? now + (claims.ttlSeconds ?? 24 * 3600);
  return new SignJWT({})
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

/** Reads the unverified `iss` (app id) so the right secret can be picked. */
export function unverifiedApp(token: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { iss?: unknown };
    return typeof payload.iss === 'string' ? payload.iss : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Verifies a device token against the secrets of the known apps. `expectedApp` (from the
 * connect URL's `app` query parameter, when given) must match the token's app.
 */
export async function verifyDeviceToken(
  token: string,
  secretOf: (app: string) => string | undefined,
  expectedApp?: string,
): Promise<TokenCheck> {
  const app = unverifiedApp(token);
  if (!app) return { ok: false, reason: 'malformed' };
  if (expectedApp !== undefined && expectedApp !== app) return { ok: false, reason: 'unknown_app' };
  const secret = secretOf(app);
  if (!secret) return { ok: false, reason: 'unknown_app' };
  try {
    const { payload } = await jwtVerify(token, encoder.encode(secret), {
      algorithms: ['HS256'],
      audience: DEVICE_TOKEN_AUDIENCE,
      issuer: app,
      requiredClaims: ['exp', 'sub'],
    });
    const device = payload.sub;
    if (!device || !/^[A-Za-z0-9._:@-]{1,128}$/.test(device) || typeof payload.exp !== 'number') {
      return { ok: false, reason: 'invalid_claims' };
    }
    return { ok: true, claims: { app, device, exp: payload.exp } };
  } catch (err) {
    if (err instanceof errors.JWTExpired) return { ok: false, reason: 'expired' };
    if (err instanceof errors.JWSSignatureVerificationFailed) return { ok: false, reason: 'bad_signature' };
    if (err instanceof errors.JWTClaimValidationFailed) return { ok: false, reason: 'invalid_claims' };
    return { ok: false, reason: 'malformed' };
  }
}
