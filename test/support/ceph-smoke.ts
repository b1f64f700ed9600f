// Smoke check for test/support/ceph.ts (a script, not a test):
//   node dist/test/support/ceph-smoke.js [--runs N] [--parallel N] [--no-s3]
// Starts a cluster N times (printing the start-up and stop times), does an S3
// round trip with @aws-sdk/client-s3 against the first one, then starts
// --parallel clusters at once to check that they do not collide.

import { execFileSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as path from "node:path";
import { Readable } from "node:stream";
import {
  S3Client,
  CreateBucketCommand,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { cephAvailable, startCeph, type CephCluster } from "./ceph";

const MiB = 1024 * 1024;

/** The client config that works against Ceph 16 radosgw. */
function s3Config(c: CephCluster, overrides: Partial<S3ClientConfig> = {}): S3ClientConfig {
  return {
    endpoint: c.endpoint,
    region: c.region,
    credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey },
    forcePathStyle: true,
    // The SDK's default (WHEN_SUPPORTED) sends streamed bodies aws-chunked with a
    // trailing CRC32, which radosgw 16 rejects with 411 MissingContentLength.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    ...overrides,
  };
}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

async function body(b: unknown): Promise<Buffer> {
  const s = b as { transformToByteArray(): Promise<Uint8Array> };
  return Buffer.from(await s.transformToByteArray());
}

function md5(b: Buffer): string {
  return crypto.createHash("md5").update(b).digest("hex");
}

function dataPoolObjects(c: CephCluster): number {
  try {
    const out = execFileSync("rados", ["-c", path.join(c.dir, "ceph.conf"), "-p", "default.rgw.buckets.data", "ls"], {
      encoding: "utf8",
      timeout: 10_000,
    });
    return out.split("\n").filter((l) => l.trim() !== "").length;
  } catch {
    return -1;
  }
}

async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  const v = await f();
  console.log(`  ${label}: ${Date.now() - t0} ms`);
  return v;
}

async function s3RoundTrip(c: CephCluster): Promise<void> {
  const s3 = new S3Client(s3Config(c));
  const bucket = "smoke";
  await timed("CreateBucket", () => s3.send(new CreateBucketCommand({ Bucket: bucket })));

  // PutObject from a buffer and from a stream (with ContentLength).
  const small = Buffer.from("hello, ceph! 0123456789");
  await timed("PutObject (buffer)", () => s3.send(new PutObjectCommand({ Bucket: bucket, Key: "small", Body: small })));
  const streamed = crypto.randomBytes(256 * 1024);
  await timed("PutObject (stream)", () =>
    s3.send(new PutObjectCommand({ Bucket: bucket, Key: "streamed", Body: Readable.from([streamed]), ContentLength: streamed.length })),
  );
  const got = await body((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "streamed" }))).Body);
  assert(got.equals(streamed), "streamed object round trip");

  // Ranged GET.
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "small", Range: "bytes=7-10" }));
  const rb = await body(r.Body);
  assert(rb.toString() === "ceph", `range body ${JSON.stringify(rb.toString())}`);
  assert(r.ContentRange === `bytes 7-10/${small.length}`, `ContentRange ${r.ContentRange}`);
  console.log(`  GetObject Range: ok (${r.ContentRange}, status 206)`);

  // Multipart: 2 parts of 5 MiB.
  const p1 = crypto.randomBytes(5 * MiB);
  const p2 = crypto.randomBytes(5 * MiB);
  const whole = Buffer.concat([p1, p2]);
  const key = "multi";
  await timed("multipart upload (2 x 5 MiB)", async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    assert(UploadId, "UploadId");
    const e1 = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: p1 }));
    const e2 = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 2, Body: p2 }));
    const done = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: e1.ETag },
            { PartNumber: 2, ETag: e2.ETag },
          ],
        },
      }),
    );
    console.log(`  CompleteMultipartUpload ETag: ${JSON.stringify(done.ETag)} (may be empty on Ceph 16)`);
  });
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  assert(head.ContentLength === whole.length, `multipart size ${head.ContentLength}`);
  console.log(`  HeadObject multipart: size ${head.ContentLength}, ETag ${head.ETag}`);
  const across = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${5 * MiB - 10}-${5 * MiB + 9}` }));
  assert((await body(across.Body)).equals(whole.subarray(5 * MiB - 10, 5 * MiB + 10)), "range across the part boundary");
  const full = await body((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body);
  assert(md5(full) === md5(whole), "multipart content");
  console.log("  GetObject multipart: full and cross-part range ok");

  // lib-storage Upload of a stream of unknown length (multipart under the hood).
  const big = crypto.randomBytes(11 * MiB);
  await timed("lib-storage Upload (11 MiB stream, 5 MiB parts)", () =>
    new Upload({
      client: s3,
      params: { Bucket: bucket, Key: "upload", Body: Readable.from([big.subarray(0, 3 * MiB), big.subarray(3 * MiB)]) },
      partSize: 5 * MiB,
      queueSize: 2,
    }).done(),
  );
  const up = await body((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "upload" }))).Body);
  assert(md5(up) === md5(big), "lib-storage upload content");

  const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  console.log(`  ListObjectsV2: ${(list.Contents ?? []).map((o) => `${o.Key}(${o.Size})`).join(" ")}`);

  // Delete, and watch gc drop the data from the OSD.
  const before = dataPoolObjects(c);
  for (const k of ["small", "streamed", "multi", "upload"]) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: k }));
  let notFound = false;
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "multi" }));
  } catch (err) {
    notFound = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404;
  }
  assert(notFound, "HeadObject after DeleteObject is 404");
  console.log("  DeleteObject: ok (HeadObject -> 404)");
  const t0 = Date.now();
  let after = dataPoolObjects(c);
  while (after > 0 && Date.now() - t0 < 20_000) {
    await new Promise((r) => setTimeout(r, 250));
    after = dataPoolObjects(c);
  }
  console.log(`  rados objects in default.rgw.buckets.data: ${before} before delete, ${after} after ${Date.now() - t0} ms (gc)`);

  // Pitfall check: the SDK's default checksum settings with a streamed body.
  const dflt = new S3Client(s3Config(c, { requestChecksumCalculation: undefined, responseChecksumValidation: undefined }));
  try {
    await dflt.send(new PutObjectCommand({ Bucket: bucket, Key: "dflt", Body: Readable.from([small]), ContentLength: small.length }));
    console.log("  default checksum config, streamed PutObject: succeeded");
  } catch (err) {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    console.log(`  default checksum config, streamed PutObject: fails as expected (${e.$metadata?.httpStatusCode} ${e.name})`);
  }
  dflt.destroy();
  s3.destroy();
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const num = (flag: string, dflt: number) => {
    const i = args.indexOf(flag);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const runs = num("--runs", 3);
  const parallel = num("--parallel", 2);
  if (!cephAvailable()) {
    console.log("ceph binaries not installed: nothing to do");
    return;
  }
  for (let i = 1; i <= runs; i++) {
    const t0 = Date.now();
    const c = await startCeph();
    console.log(`run ${i}: started in ${Date.now() - t0} ms, ${c.endpoint}, dir ${c.dir}`);
    try {
      if (i === 1 && !args.includes("--no-s3")) await s3RoundTrip(c);
    } catch (err) {
      console.error(c.logTail(20));
      throw err;
    } finally {
      const t1 = Date.now();
      await c.stop();
      console.log(`run ${i}: stopped in ${Date.now() - t1} ms`);
    }
  }
  if (parallel > 1) {
    const t0 = Date.now();
    const cs = await Promise.all(Array.from({ length: parallel }, () => startCeph()));
    console.log(`${parallel} clusters in parallel: started in ${Date.now() - t0} ms (${cs.map((c) => c.endpoint).join(", ")})`);
    for (const c of cs) {
      const s3 = new S3Client(s3Config(c));
      await s3.send(new CreateBucketCommand({ Bucket: "parallel" }));
      await s3.send(new PutObjectCommand({ Bucket: "parallel", Key: "k", Body: c.endpoint }));
      const b = await body((await s3.send(new GetObjectCommand({ Bucket: "parallel", Key: "k" }))).Body);
      assert(b.toString() === c.endpoint, "parallel cluster round trip");
      s3.destroy();
    }
    await Promise.all(cs.map((c) => c.stop()));
    console.log(`${parallel} clusters in parallel: round trips ok, stopped`);
  }
}

if (process.env.NODE_TEST_CONTEXT !== undefined) {
  // Picked up by `node --test` through a directory glob: this is not a test.
} else {
  main().then(
    () => console.log("ceph smoke: ok"),
    (err) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : err);
      process.exitCode = 1;
    },
  );
}
