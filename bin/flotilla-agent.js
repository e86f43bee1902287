#!/usr/bin/env node
// The `flotilla-agent` edge agent: runs the compiled bundle (dist/agent, built by `npm run build`).
// FLOTILLA_DEV=1 runs the TypeScript source through tsx instead (a development aid; tsx is a dev tool).
import { launch } from './launch.js';

await launch({ bundle: '../dist/agent/flotilla-agent.js', source: '../agent/main.ts', name: 'flotilla-agent' });
