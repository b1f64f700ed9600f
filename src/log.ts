import winston from 'winston';
import type { Config } from './config/config';

/** Text for people at a terminal, JSON for log pipelines; always to stderr. */
export function createLogger(options: Config['log']): winston.Logger {
  const format =
    options.format === 'json'
      ? winston.format.combine(winston.format.timestamp(), winston.format.json())
      : winston.format.combine(
          winston.format.timestamp(),
          winston.format.printf(({ timestamp, level, message, ...rest }) => {
            const fields = Object.entries(rest)
              .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
              .join(' ');
            return `${String(timestamp)} ${level} ${String(message)}${fields ? ` ${fields}` : ''}`;
          }),
        );
  return winston.createLogger({
    level: options.level,
    format,
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}
