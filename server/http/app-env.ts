// Hono context typing shared by every route module.
import type { Principal } from '../auth/api-tokens.ts';

export interface AppEnv {
  Variables: {
    principal: Principal;
  };
}
