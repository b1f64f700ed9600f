import type { Command } from 'commander';
import { resolveConfig, type CommonFlags } from '../config/config';
import { createLogger } from '../log';
import { startServer } from '../server/server';

interface ServeFlags extends CommonFlags {
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  logFormat?: 'text' | 'json';
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the containerd content API on a unix socket')
    .option('--address <socket>', 'unix socket to listen on (default: <root>/contentd.sock)')
    .option('--log-level <level>', 'error, warn, info or debug')
    .option('--log-format <format>', 'text or json')
    .action(async (flags: ServeFlags, command: Command) => {
      // Data files hold private image content: nothing the server creates is world-readable.
      process.umask(0o077);
      const config = resolveConfig({ ...command.optsWithGlobals<CommonFlags>(), ...flags });
      if (flags.logLevel) config.log.level = flags.logLevel;
      if (flags.logFormat) config.log.format = flags.logFormat;
      const logger = createLogger(config.log);
      const server = await startServer(config, logger);
      const stop = (signal: string): void => {
        logger.info('shutting down', { signal });
        server.shutdown().then(
          () => process.exit(0),
          (e: unknown) => {
            logger.error('shutdown failed', { error: String(e) });
            process.exit(1);
          },
        );
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
}
