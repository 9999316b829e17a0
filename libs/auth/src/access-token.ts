import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, errors } from 'jose';

const ISSUER = 'limiquantix';
const AUDIENCE = 'limiquantix-api';

export interface AccessClaims {
  userId: string;
  username: string;
  /** The user's session generation when the token was issued: a password change ends it. */
  generation: number;
}

export interface VerifiedAccess extends AccessClaims {
  /** When the token expires (ms since the epoch). */
  expiresAt: number;
}

/** Short-lived HS256 access tokens; the roles are read per request, not carried in the token. */
export class AccessTokens {
  private readonly key: Uint8Array;

  constructor(
    secret: Uint8Array,
    readonly ttlSeconds: number,
  ) {
    if (secret.length < 32) {
      throw new Error('the JWT secret must be at least 32 bytes');
    }
    this.key = secret;
  }

  sign(claims: AccessClaims, now = Date.now()): Promise<string> {
    const iat = Math.floor(now / 1000);
    return new SignJWT({ name: claims.username, typ: 'access', gen: claims.generation })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(claims.userId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(iat + this.ttlSeconds)
      .setJti(randomUUID())
      .sign(this.key);
  }

  /** The claims of a valid token; a reason string for an expired, tampered or foreign one. */
  async verify(token: string): Promise<VerifiedAccess | { invalid: string }> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ['HS256'],
        clockTolerance: 5,
      });
      if (payload.typ !== 'access' || typeof payload.sub !== 'string') {
        return { invalid: 'not an access token' };
      }
      return {
        userId: payload.sub,
        username: typeof payload.name === 'string' ? payload.name : '',
        // Tokens from before generations existed count as generation 0.
        generation: typeof payload.gen === 'number' ? payload.gen : 0,
        expiresAt: (payload.exp ?? 0) * 1000,
      };
    } catch (err) {
      if (err instanceof errors.JWTExpired) {
        return { invalid: 'token expired' };
      }
      if (err instanceof errors.JWSSignatureVerificationFailed) {
        return { invalid: 'bad token signature' };
      }
      return { invalid: 'malformed or unacceptable token' };
    }
  }
}
