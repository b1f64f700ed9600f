import { invalidArgument } from '../store/errors';
import type { RequestContext } from '../store/types';

/** The gRPC metadata keys containerd's clients use. */
export const NAMESPACE_HEADER = 'containerd-namespace';
export const LEASE_HEADER = 'containerd-lease';

const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const MAX_IDENTIFIER_LENGTH = 76;

/** containerd's identifiers.Validate, used for namespaces and lease ids. */
export function validateIdentifier(kind: string, value: string): string {
  if (value.length === 0) throw invalidArgument(`${kind} must not be empty`);
  if (value.length > MAX_IDENTIFIER_LENGTH) {
    throw invalidArgument(`${kind} ${JSON.stringify(value.slice(0, 20))}... greater than maximum length (${MAX_IDENTIFIER_LENGTH} characters)`);
  }
  if (!IDENTIFIER.test(value)) throw invalidArgument(`${kind} ${JSON.stringify(value)} must match ${IDENTIFIER.source}`);
  return value;
}

/** What the request context needs of a call's metadata (grpc-js's Metadata fits too). */
export interface MetadataReader {
  get(key: string): Array<string | Buffer>;
}

function single(metadata: MetadataReader, key: string): string | undefined {
  const values = metadata.get(key);
  if (values.length === 0) return undefined;
  return String(values[values.length - 1]);
}

export function requestContext(metadata: MetadataReader): RequestContext {
  const namespace = single(metadata, NAMESPACE_HEADER);
  const lease = single(metadata, LEASE_HEADER);
  return {
    namespace: namespace === undefined ? '' : validateIdentifier('namespace', namespace),
    lease: lease || undefined,
  };
}
