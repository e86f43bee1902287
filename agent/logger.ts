// Structured logs (pino) to stdout; journald or the container runtime collects them.
import pino, { type Logger } from 'pino';

export function createAgentLogger(level: string): Logger {
  return pino({ name: 'flotilla-agent', level });
}
