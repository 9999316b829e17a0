import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

// lq_<prefix>_<secret>: the prefix finds the row, only the secret's hash is stored. The secret
// has 190+ bits of entropy, so a fast hash is the right one (a slow hash would only slow every
// request down); passwords, which people choose, get scrypt.
const API_KEY = /^lq_([a-z0-9]{8})_([A-Za-z0-9]{32,128})$/;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const PREFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomString(alphabet: string, length: number): string {
  // Rejection sampling: no modulo bias.
  const limit = 256 - (256 % alphabet.length);
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < limit && out.length < length) {
        out += alphabet[byte % alphabet.length];
      }
    }
  }
  return out;
}

export interface ParsedApiKey {
  prefix: string;
  secret: string;
}

export function parseApiKey(token: string): ParsedApiKey | undefined {
  const m = API_KEY.exec(token);
  return m ? { prefix: m[1] as string, secret: m[2] as string } : undefined;
}

export function looksLikeApiKey(token: string): boolean {
  return token.startsWith('lq_');
}

/**
 * The way a refused caller tried to authenticate, from its Authorization header (a bearer API
 * key, anything else given, nothing), as the audit trail names it: one rule for REST and Connect.
 */
export function attemptedAuthMethod(authorization: string | undefined): 'api_key' | 'jwt' | 'none' {
  return !authorization ? 'none' : /^bearer\s+lq_/i.test(authorization) ? 'api_key' : 'jwt';
}

export function generateApiKey(): { token: string; prefix: string; secret: string } {
  const prefix = randomString(PREFIX_ALPHABET, 8);
  const secret = randomString(ALPHABET, 40);
  return { token: `lq_${prefix}_${secret}`, prefix, secret };
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const h = hashSecret(secret);
  return h.length === storedHash.length && timingSafeEqual(h, storedHash);
}
