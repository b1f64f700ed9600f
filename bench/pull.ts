import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildOciImage, type OciImage } from '../test/support/oci-image';
import { startRegistry, type Registry } from '../test/support/registry';

/** A generated image served by a local docker-registry, for `ctr images pull`. */
export interface PullFixture {
  /** The image reference to pull. */
  readonly ref: string;
  /** Bytes transferred: layers, config and manifest. */
  readonly size: number;
  stop(): Promise<void>;
}

export async function startPullFixture(dir: string, layers: number, layerSize: number): Promise<PullFixture> {
  // Random file content (randomShare 1) does not compress: the image is as big on the wire as on disk.
  const image = await buildOciImage({ dir: join(dir, 'image'), layers, layerSize, filesPerLayer: 8, randomShare: 1, seed: 'bench' });
  const registry = await startRegistry(join(dir, 'registry'));
  try {
    const ref = await pushImage(registry, 'bench/pull', 'latest', image);
    return { ref, size: image.size, stop: () => registry.stop() };
  } catch (e) {
    await registry.stop();
    throw e;
  }
}

/** Pushes image as repository:tag with the registry API (monolithic blob uploads): no containerd needed. */
async function pushImage(registry: Registry, repository: string, tag: string, image: OciImage): Promise<string> {
  const base = `http://${registry.host}/v2/${repository}`;
  for (const blob of [...image.layers, image.config]) {
    const started = await fetch(`${base}/blobs/uploads/`, { method: 'POST' });
    const location = started.headers.get('location');
    if (started.status !== 202 || !location) throw new Error(`registry upload start: ${started.status}`);
    const url = new URL(location, base);
    url.searchParams.set('digest', blob.digest);
    const body = new Uint8Array(await readFile(image.blobs.get(blob.digest)!));
    const put = await fetch(url, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`registry upload of ${blob.digest}: ${put.status} ${await put.text()}`);
  }
  const manifest = new Uint8Array(await readFile(image.blobs.get(image.manifest.digest)!));
  const put = await fetch(`${base}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': image.manifest.mediaType } });
  if (put.status !== 201) throw new Error(`registry manifest push: ${put.status} ${await put.text()}`);
  return `${registry.host}/${repository}:${tag}`;
}
