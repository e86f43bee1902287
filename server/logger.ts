import pino, { type Logger } from 'pino';

export function createLogger(level: string, name = 'flotilla'): Logger {
  return pino({ name, level });
}
