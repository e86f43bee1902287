#!/usr/bin/env node
// The `flotilla` CLI: runs the compiled bundle (dist/cli, built by `npm run build`).
// FLOTILLA_DEV=1 runs the TypeScript source through tsx instead (a development aid; tsx is a dev tool).
import { launch } from './launch.js';

await launch({ bundle: '../dist/cli/flotilla.js', source: '../server/cli/main.ts', name: 'flotilla' });
