#!/usr/bin/env node
// The control plane (`npm start`): runs the compiled bundle (dist/server, built by `npm run build`).
// FLOTILLA_DEV=1 runs the TypeScript source through tsx instead (a development aid; tsx is a dev tool).
import { launch } from './launch.js';

await launch({ bundle: '../dist/server/flotilla-server.js', source: '../server/main.ts', name: 'flotilla-server' });
