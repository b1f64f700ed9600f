import { after, before } from 'node:test';
import type { ContentClient } from '../../generated/containerd/services/content/v1/content';
import { contentClient } from './client';
import { startTestServer, type ServerOptions, type TestServer } from './server';

export interface Fixture {
  readonly server: TestServer;
  readonly client: ContentClient;
  /** A fresh client, e.g. after the server restarted. */
  reconnect(): ContentClient;
}

/** One server and client for the enclosing suite, started in before() and removed in after(). */
export function serverFixture(options: ServerOptions = {}): Fixture {
  let server: TestServer | undefined;
  let client: ContentClient | undefined;
  before(async () => {
    server = await startTestServer(options);
    client = contentClient(server.address);
  });
  after(async () => {
    client?.close();
    await server?.destroy();
  });
  return {
    get server() {
      return server!;
    },
    get client() {
      return client!;
    },
    reconnect() {
      client?.close();
      client = contentClient(server!.address);
      return client;
    },
  };
}
