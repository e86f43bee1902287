/**
 * The update states of `reported` (reported.ts), in a file of their own without zod, so that the CLI
 * can name them without loading zod at start (`flotilla --help` start-up, README "CLI start-up").
 */
export const UPDATE_STATES = ['idle', 'downloading', 'verifying', 'staging', 'activating', 'probation', 'active', 'failed', 'rolled_back'] as const;
export type UpdateState = (typeof UPDATE_STATES)[number];
export const TERMINAL_STATES: ReadonlySet<UpdateState> = new Set(['idle', 'active', 'failed', 'rolled_back']);
