import { credentials, makeClientConstructor, status, type CallOptions, type ClientReadableStream, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { service as healthService } from 'grpc-health-check';
import { commandConfig } from './open';
import { addJsonOption, printJson, printText, type OutputFlags } from './output';

/** A client of grpc.health.v1.Health; statuses are enum names (SERVING, NOT_SERVING, ...). */
export interface HealthClient {
  Check(request: { service: string }, options: CallOptions, callback: (err: ServiceError | null, res: { status: string }) => void): void;
  Watch(request: { service: string }): ClientReadableStream<{ status: string }>;
  close(): void;
}

const HealthClientConstructor = makeClientConstructor(healthService as unknown as ServiceDefinition, 'grpc.health.v1.Health');

export function healthClient(socket: string): HealthClient {
  return new HealthClientConstructor(`unix:${socket}`, credentials.createInsecure()) as unknown as HealthClient;
}

/**
 * Asks a server's grpc.health.v1.Health service about one service ('' for
 * the server as a whole). Resolves to SERVING, NOT_SERVING or UNKNOWN;
 * SERVICE_UNKNOWN when the server does not serve that name; UNREACHABLE when
 * nothing answers on the socket in time.
 */
export async function checkHealth(socket: string, service: string, timeoutMs: number): Promise<{ status: string; detail?: string }> {
  const client = healthClient(socket);
  try {
    return await new Promise((resolve) =>
      client.Check({ service }, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (!err) resolve({ status: res.status });
        else if (err.code === status.NOT_FOUND) resolve({ status: 'SERVICE_UNKNOWN' });
        else resolve({ status: 'UNREACHABLE', detail: err.details });
      }),
    );
  } finally {
    client.close();
  }
}

interface HealthFlags extends OutputFlags {
  address?: string;
  service: string;
  wait?: string;
}

export function registerHealth(program: Command): void {
  addJsonOption(
    program
      .command('health')
      .description("ask a running server whether it is serving (the gRPC health service on the server's socket)")
      .option('--address <socket>', 'server socket (default: grpc.address from the config)')
      .option('--service <name>', 'one service, e.g. containerd.services.content.v1.Content; default: the whole server', '')
      .option('--wait <seconds>', 'keep asking until the server is serving or this many seconds have passed'),
  )
    .addHelpText('after', '\nPrints the status and exits 0 when SERVING, 1 otherwise (NOT_SERVING while starting or stopping).')
    .action(async (flags: HealthFlags, command: Command) => {
      const socket = commandConfig(command).grpc.address;
      const waitMs = flags.wait === undefined ? 0 : Number(flags.wait) * 1000;
      if (!Number.isFinite(waitMs) || waitMs < 0) throw new Error(`--wait must be a number of seconds, not ${JSON.stringify(flags.wait)}`);
      const deadline = Date.now() + waitMs;
      let result = await checkHealth(socket, flags.service, Math.max(1000, Math.min(5000, waitMs)));
      while (result.status !== 'SERVING' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        result = await checkHealth(socket, flags.service, Math.max(250, Math.min(5000, deadline - Date.now())));
      }
      if (flags.json) printJson({ socket, service: flags.service, ...result });
      else printText(`${result.status}${result.detail ? ` (${socket}: ${result.detail})` : ''}`);
      if (result.status !== 'SERVING') process.exitCode = 1;
    });
}
