/**
 * Keeps mobile numbers and ID-card numbers so they can be matched (keyed hash), shown (mask) and given
 * back to a supplier (authenticated encryption), and never stored or logged in clear.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { maskIdCard, maskMobile } from '../domain/personal-data';

export const MIN_KEY_LENGTH = 32;
const CIPHER_VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** The key is shorter than MIN_KEY_LENGTH. The message never contains the key. */
export class WeakPersonalDataKeyError extends Error {
  constructor() {
    super(`the personal-data key must be at least ${MIN_KEY_LENGTH} characters`);
    this.name = 'WeakPersonalDataKeyError';
  }
}

/** Cipher text that is malformed, of an unknown version, tampered with, or made under another key. */
export class PersonalDataDecryptError extends Error {
  constructor(reason: string) {
    super(`personal data cannot be decrypted: ${reason}`);
    this.name = 'PersonalDataDecryptError';
  }
}

/** What we store for one piece of personal data. */
export interface ProtectedValue {
  masked: string;
  hash: string;
  cipher: string;
}

export class PersonalDataProtector {
  // Separate sub-keys, so the lookup hash and the cipher never share key material.
  private readonly hashKey: Buffer;
  private readonly encryptionKey: Buffer;

  constructor(secret: string) {
    if (typeof secret !== 'string' || secret.length < MIN_KEY_LENGTH) throw new WeakPersonalDataKeyError();
    this.hashKey = createHmac('sha256', secret).update('ticket-gateway/personal-data/hash').digest();
    this.encryptionKey = createHmac('sha256', secret).update('ticket-gateway/personal-data/aes-256-gcm').digest();
  }

  /** HMAC-SHA256 (hex) of the normalised value: equal inputs give equal hashes under one key only. */
  hash(value: string): string {
    return createHmac('sha256', this.hashKey).update(normalise(value), 'utf8').digest('hex');
  }

  /** 'v1.<iv>.<ciphertext>.<tag>' (base64url parts); a fresh random IV every time. */
  encrypt(value: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.encryptionKey, iv);
    cipher.setAAD(Buffer.from(CIPHER_VERSION));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [CIPHER_VERSION, iv.toString('base64url'), body.toString('base64url'), tag.toString('base64url')].join('.');
  }

  decrypt(text: string): string {
    const parts = text.split('.');
    if (parts.length !== 4) throw new PersonalDataDecryptError('malformed');
    const [version, ivText, bodyText, tagText] = parts as [string, string, string, string];
    if (version !== CIPHER_VERSION) throw new PersonalDataDecryptError('unknown version');
    const iv = fromBase64Url(ivText);
    const tag = fromBase64Url(tagText);
    const body = fromBase64Url(bodyText);
    if (!iv || !tag || !body || iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
      throw new PersonalDataDecryptError('malformed');
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.encryptionKey, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(version));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    } catch {
      throw new PersonalDataDecryptError('authentication failed');
    }
  }

  /** Everything stored for a mobile number. */
  protectMobile(mobile: string): ProtectedValue {
    const clear = normalise(mobile);
    return { masked: maskMobile(clear), hash: this.hash(clear), cipher: this.encrypt(clear) };
  }

  /** Everything stored for an ID-card number (a trailing x is upper-cased first, so both spellings match). */
  protectIdCard(idCard: string): ProtectedValue {
    const clear = normalise(idCard);
    return { masked: maskIdCard(clear), hash: this.hash(clear), cipher: this.encrypt(clear) };
  }

  /** A short, non-reversible fingerprint of the key itself, to check replicas share one key (safe to log). */
  keyFingerprint(): string {
    return createHash('sha256').update(this.hashKey).digest('hex').slice(0, 12);
  }

  /** Constant-time comparison of a stored hash with the hash of a presented value. */
  matches(value: string, storedHash: string): boolean {
    const a = Buffer.from(this.hash(value), 'hex');
    const b = Buffer.from(storedHash, 'hex');
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

// Same person, same hash: blanks are dropped and the ID check letter is upper-case.
function normalise(value: string): string {
  return value.replace(/\s+/g, '').toUpperCase();
}

function fromBase64Url(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  return Buffer.from(text, 'base64url');
}
