#!/usr/bin/env -S node --max-semi-space-size=2 --v8-pool-size=1
// The `flotilla-agent` edge agent: runs the compiled bundle (dist/agent, built by `npm run build`).
// FLOTILLA_DEV=1 runs the TypeScript source through tsx instead (a development aid; tsx is a dev tool).
import { launch } from './launch.js';

// The shebang gives V8 2 MB semi-spaces instead of 16 MB: the agent's garbage is small and short-lived,
// and the default young generation grew RSS by ≈ 30 MB under load (agent/README.md, "Memory"). And one
// V8 background thread instead of one per core: with a model loaded the agent was ≈ 9 MB smaller, at the
// same latency. V8 takes both only at start, so they are node options (the systemd unit runs this file,
// the tests too).
await launch({ bundle: '../dist/agent/flotilla-agent.js', source: '../agent/main.ts', name: 'flotilla-agent' });
