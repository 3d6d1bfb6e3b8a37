import pino from 'pino';
import { scrubText } from '../domain/redact.js';

/**
 * Fields that never reach a log, wherever they sit (top level or one object down): credentials
 * by name. Everything else is scrubbed by value (scrubText) as each line is written.
 */
export const REDACTED_LOG_PATHS = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  ...['value', 'secret', 'password', 'token', 'apiKey', 'api_key', 'masterKey', 'masterKeyPrevious', 'adminApiKey'].flatMap((f) => [
    f,
    `*.${f}`,
  ]),
  '*.headers.authorization',
];

/** Structured JSON logs for every Warden process, with credentials redacted by field and by value. */
export function createLogger(name: string, level: string, destination?: pino.DestinationStream) {
  const options: pino.LoggerOptions = {
    name,
    level,
    base: { pid: process.pid },
    redact: { paths: REDACTED_LOG_PATHS, censor: '[REDACTED]' },
    hooks: { streamWrite: scrubText },
  };
  return destination ? pino(options, destination) : pino(options);
}
