import type { Command } from 'commander';
import { setFlagsFromString } from 'node:v8';
import { changedSettings, resolveConfig, type CommonFlags } from '../config/config';
import { createLogger } from '../log';
import { startServer, type RunningServer } from '../server/server';

interface ServeFlags extends CommonFlags {
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  logFormat?: 'text' | 'json';
  metricsAddress?: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the containerd content API on a unix socket')
    .option('--address <socket>', 'unix socket to listen on (default: <root>/contentd.sock)')
    .option('--log-level <level>', 'error, warn, info or debug')
    .option('--log-format <format>', 'text or json')
    .option('--metrics-address <host:port>', 'serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (default: off)')
    .addHelpText('after', '\nSIGTERM or SIGINT stops gracefully. SIGHUP re-reads the config file and applies [log] level;\nevery other setting takes effect only after a restart.')
    .action(async (flags: ServeFlags, command: Command) => {
      // Data files hold private image content: nothing the server creates is world-readable.
      process.umask(0o077);
      // V8 moves an allocation site to old-space allocation once its objects tend to survive,
      // as a call's objects do while commits and Write streams are slow. Those objects then
      // live in the old generation, where each young object they point to is kept alive
      // through every scavenge and promoted: after 2,000 commits, Info with 8 calls in flight
      // promoted ~0.5 MB per scavenge for good. Without pretenuring: nothing, and server CPU per
      // Info call 10 -> 9 µs.
      setFlagsFromString('--no-allocation-site-pretenuring');
      const configure = () => {
        const config = resolveConfig({ ...command.optsWithGlobals<CommonFlags>(), ...flags });
        if (flags.logLevel) config.log.level = flags.logLevel;
        if (flags.logFormat) config.log.format = flags.logFormat;
        if (flags.metricsAddress !== undefined) config.metrics.address = flags.metricsAddress;
        return config;
      };
      const config = configure();
      const logger = createLogger(config.log);
      // Registered before start-up so that an early SIGHUP cannot kill the process.
      process.on('SIGHUP', () => {
        try {
          const next = configure();
          logger.level = config.log.level = next.log.level;
          const pending = changedSettings(config, next);
          logger.info('configuration reloaded', { logLevel: next.log.level });
          if (pending.length > 0) logger.warn('changed settings take effect only after a restart', { settings: pending.join(',') });
        } catch (e) {
          logger.error('configuration reload failed; nothing changed', { error: e instanceof Error ? e.message : String(e) });
        }
      });
      let server: RunningServer | undefined;
      const stop = (signal: string): void => {
        // During start-up (waiting for the root's lock, say) there is nothing to drain: stop as a crash would, which the store recovers from.
        if (!server) {
          logger.warn('stopped during start-up', { signal });
          process.exit(1);
        }
        logger.info('shutting down', { signal });
        server.shutdown().then(
          () => process.exit(0),
          (e: unknown) => {
            logger.error('shutdown failed', { error: String(e) });
            process.exit(1);
          },
        );
      };
      // Registered before start-up: until a listener exists, SIGINT and SIGTERM kill the process outright.
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      server = await startServer(config, logger);
    });
}
