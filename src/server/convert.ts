import type { Timestamp } from '../../generated/google/protobuf/timestamp';
import type { Info as ProtoInfo, Status as ProtoStatus } from '../../generated/containerd/services/content/v1/content';
import type { Info, Status } from '../store/types';

/** Message translation between protobuf types and store types. */

export function toTimestamp(ns: bigint): Timestamp {
  return { seconds: Number(ns / 1_000_000_000n), nanos: Number(ns % 1_000_000_000n) };
}

export function toProtoInfo(info: Info): ProtoInfo {
  return {
    digest: info.digest,
    size: info.size,
    createdAt: toTimestamp(info.createdAt),
    updatedAt: toTimestamp(info.updatedAt),
    labels: info.labels,
  };
}

export function toProtoStatus(status: Status): ProtoStatus {
  return {
    ref: status.ref,
    offset: status.offset,
    total: status.total,
    expected: status.expected,
    startedAt: toTimestamp(status.startedAt),
    updatedAt: toTimestamp(status.updatedAt),
  };
}
