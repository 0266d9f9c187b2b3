import { z } from 'zod';

/**
 * One definition of every identifier pushgate handles, imported by the device protocol
 * (frames.ts, token.ts), the gateway (push API, locator, apps loader), the Redis key schema,
 * and the operator's API schemas (so the CRDs say the same). Nothing else spells these rules.
 *
 * Where the CRDs and the wire disagreed (issue 14), the wire won: devices in the field already
 * carry tags such as `_beta`, and the gateway stores and delivers them, so a campaign must be able
 * to target them. App ids were the exception the other way: the gateway accepted `:` and `@`,
 * but app ids come only from the apps Secret (keys `[-._a-zA-Z0-9]`) or `app:secret` lines, so an
 * app id with `:` or `@` could never be configured; app ids are now the characters both allow.
 * Nothing on the wire that could ever authenticate is refused by the change.
 *
 * Each pattern is plain RE2 and ECMAScript at once (no lookaround, no backreferences), because
 * the same text goes into the CRD (`pattern`, checked by the API server in Go) and into zod.
 */

/** Characters of device ids, aliases and tags: printable, no spaces, no braces (Redis hashtags). */
const ID_CHARS = 'A-Za-z0-9._:@-';

/** Device id (the token's `sub`): 1-128 of `A-Z a-z 0-9 . _ : @ -`. */
export const DEVICE_ID_MAX = 128;
export const DEVICE_ID_PATTERN = `^[${ID_CHARS}]{1,${DEVICE_ID_MAX}}$`;
/** An alias names one user's devices; same grammar as a device id. */
export const ALIAS_MAX = DEVICE_ID_MAX;
export const ALIAS_PATTERN = DEVICE_ID_PATTERN;
/** Device tag: 1-64 of `A-Z a-z 0-9 . _ : @ -` (leading `_` or `.` allowed, as devices use them). */
export const TAG_MAX = 64;
export const TAG_PATTERN = `^[${ID_CHARS}]{1,${TAG_MAX}}$`;
/** A collapse key is spelled like a tag. */
export const COLLAPSE_KEY_PATTERN = TAG_PATTERN;
/**
 * App id (the token's `iss`, the push API's path segment, a key of the apps Secret):
 * 1-128 of `A-Z a-z 0-9 . _ -`, not starting with `.` (a mounted Secret's dot files are its own
 * bookkeeping, `..data`, and the gateway skips them).
 */
export const APP_ID_MAX = 128;
export const APP_ID_PATTERN = `^[A-Za-z0-9_-][A-Za-z0-9._-]{0,${APP_ID_MAX - 1}}$`;
/** Message id, as the gateway mints it (the dedupe key a device keeps). */
export const MESSAGE_ID_MAX = 64;

const ID_MESSAGE = 'only letters, digits and . _ : @ - allowed';

export const deviceId = z
  .string()
  .min(1)
  .max(DEVICE_ID_MAX)
  .regex(new RegExp(DEVICE_ID_PATTERN), `${ID_MESSAGE} (1 to ${DEVICE_ID_MAX})`);
export const alias = deviceId;
export const tag = z
  .string()
  .min(1)
  .max(TAG_MAX)
  .regex(new RegExp(TAG_PATTERN), `${ID_MESSAGE} (1 to ${TAG_MAX})`);
export const collapseKey = tag;
export const appId = z
  .string()
  .min(1)
  .max(APP_ID_MAX)
  .regex(
    new RegExp(APP_ID_PATTERN),
    `only letters, digits and . _ - allowed, not starting with . (1 to ${APP_ID_MAX})`,
  );
export const messageId = z.string().min(1).max(MESSAGE_ID_MAX);

// ---------------------------------------------------------------- Kubernetes names

/** RFC 1123 DNS label (most names, label-free Secret names, region names). */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/**
 * RFC 1035 label: what a Service name must be (starts with a letter). Every name the operator
 * derives from a PushGateway's name is a Service name or a label value, so it is the grammar of
 * a PushGateway's name.
 */
export const DNS_1035_LABEL_PATTERN = '^[a-z]([-a-z0-9]*[a-z0-9])?$';
/** RFC 1123 DNS subdomain (ConfigMap, Secret, Deployment names). */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** A label value (empty, or 1-63 alphanumerics with - _ . inside). */
export const LABEL_VALUE_PATTERN = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';
/**
 * A qualified name: label, annotation and node-selector keys (`[prefix/]name`, the prefix a DNS
 * subdomain of at most 253, the name 1-63 alphanumerics with - _ . inside).
 */
export const QUALIFIED_NAME_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
/** A key of a Secret or ConfigMap: `-._a-zA-Z0-9`, and never `.`, `..` or starting with `..`. */
export const SECRET_KEY_PATTERN = '^[-._a-zA-Z0-9]+$';
export const isSecretKey = (k: string) =>
  new RegExp(SECRET_KEY_PATTERN).test(k) && k !== '.' && !k.startsWith('..');

/** The longest Kubernetes label value and DNS label. */
export const DNS_LABEL_MAX = 63;

/**
 * A region name: a DNS label, because it is a label value (`pushgate.dev/region`) and the suffix of
 * the region's Service name `<gateway>-<region>` (which must fit 63 characters together).
 */
export const REGION_MAX = 40;
export const regionName = z
  .string()
  .min(1)
  .max(REGION_MAX)
  .regex(new RegExp(DNS_LABEL_PATTERN), 'must be a DNS label: lower-case letters, digits and -');
