import { createHash, type Hash } from 'node:crypto';
import { invalidArgument } from './errors';

/** Algorithms this store can verify, with the hex length of their encoded form. */
const ALGORITHMS: Record<string, { hash: string; hexLength: number }> = {
  sha256: { hash: 'sha256', hexLength: 64 },
};

export const CANONICAL_ALGORITHM = 'sha256';

export interface ParsedDigest {
  algorithm: string;
  encoded: string;
}

/** Validates a digest the way go-digest does; unknown algorithms are rejected. */
export function parseDigest(value: string): ParsedDigest {
  const sep = value.indexOf(':');
  if (sep <= 0) throw invalidArgument(`invalid digest ${JSON.stringify(truncate(value))}: missing algorithm`);
  const algorithm = value.slice(0, sep);
  const encoded = value.slice(sep + 1);
  const spec = ALGORITHMS[algorithm];
  if (!spec) throw invalidArgument(`invalid digest ${JSON.stringify(truncate(value))}: unsupported digest algorithm`);
  if (encoded.length !== spec.hexLength || !/^[a-f0-9]+$/.test(encoded)) {
    throw invalidArgument(`invalid digest ${JSON.stringify(truncate(value))}: invalid checksum digest format`);
  }
  return { algorithm, encoded };
}

/** True when value is a digest this store can verify. */
export function isDigest(value: string): boolean {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

export function validateDigest(value: string): string {
  parseDigest(value);
  return value;
}

export function newHash(algorithm: string = CANONICAL_ALGORITHM): Hash {
  return createHash(ALGORITHMS[algorithm]?.hash ?? algorithm);
}

export function formatDigest(hash: Hash, algorithm: string = CANONICAL_ALGORITHM): string {
  return `${algorithm}:${hash.copy().digest('hex')}`;
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 80)}…` : value;
}
