/**
 * `status` (retained): a device's presence. The agent publishes `online` on connect and sets
 * `offline` as its last will, so the broker announces an unclean disconnect on its behalf.
 *
 * @example
 * StatusMessage.parse({ v: 1, state: 'online', at: new Date().toISOString(), agentVersion: '0.1.0' });
 */
import { z } from 'zod';

export const StatusMessage = z.object({
  v: z.literal(1),
  state: z.enum(['online', 'offline']),
  at: z.string().datetime({ offset: true }).optional(),
  agentVersion: z.string().optional(),
});
export type StatusMessage = z.infer<typeof StatusMessage>;
