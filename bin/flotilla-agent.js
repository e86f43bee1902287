#!/usr/bin/env node
// The `flotilla-agent` edge agent. Node 20 cannot run TypeScript itself, so register tsx's loader first.
import { register } from 'tsx/esm/api';

register();
await import('../agent/main.ts');
