/**
 * The distributed communication layer: a CURVE-secured ZeroMQ ring between ranks, ring
 * all-reduce of float32 buckets, parameter checksums, and the Trainer's gradient reducer.
 * It moves and reduces named float32 buffers; it knows nothing about models. See
 * docs/distributed.md.
 */
export {
  RingTransport,
  DistError,
  PeerError,
  Phase,
  deriveJobKeys,
  newJobSecret,
  secretFingerprint,
  ringEndpoints,
  payloadFrames,
  z85Encode,
  RING_SECURITY,
  type RingSecurity,
  type RingTransportOptions,
  type Header,
  type Received,
  type JobKeys,
  type TransportStats,
  type PhaseId,
  type MessageId,
} from './transport.js';
export {
  ringAllReduce,
  allReduceBucket,
  ringAllGather,
  ringBarrier,
  chunkStart,
  allFinite,
  DEFAULT_SEGMENT_BYTES,
  type AllReduceOptions,
  type AllReduceResult,
  type BucketOptions,
} from './allreduce.js';
export {
  planBuckets,
  flattenBucket,
  unflattenBucket,
  scatterBucket,
  DEFAULT_BUCKET_BYTES,
  type Bucket,
  type BucketEntry,
  type BucketPlan,
  type BufferSpec,
} from './buckets.js';
export { parameterChecksum, verifyParameterChecksum, ChecksumGuard, ChecksumMismatchError, type NamedFloat32 } from './checksum.js';
export { createGradientReducer, type ReducerOptions, type ReducerStats, type DistGradientReducer } from './reducer.js';
export { JobCoordinator, CoordinatorServer, CoordinatorClient, localCoordinator, describeFailure, EXIT_PEER_FAILED, type CoordinatorLink, type CoordinatorOptions, type Failure, type Order, type Report } from './coordinator.js';
