// The fleet answer's types, taken from the typed client so they follow the server's schema.
import type { InferResponseType } from 'hono/client';
import type { Api } from '../api.ts';

export type FleetAnswer = InferResponseType<Api['api']['v1']['fleet']['$get'], 200>;
export type FleetDevice = FleetAnswer['devices'][number];
