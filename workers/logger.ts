import pino from 'pino';

/** Structured JSON logs for every Warden process. */
export function createLogger(name: string, level: string) {
  return pino({ name, level, base: { pid: process.pid } });
}
