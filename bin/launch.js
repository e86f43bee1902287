// Shared by the bin/ launchers: import the compiled program, or its source through tsx when
// FLOTILLA_DEV=1. The launcher is the one place outside the programs' env.ts that reads the
// environment, because it decides which code runs before any of it is loaded.
import { existsSync } from 'node:fs';

export async function launch({ bundle, source, name }) {
  if (process.env.FLOTILLA_DEV === '1') {
    const { register } = await import('tsx/esm/api');
    register();
    await import(new URL(source, import.meta.url).href);
    return;
  }
  const url = new URL(bundle, import.meta.url);
  if (!existsSync(url)) {
    process.stderr.write(`${name}: ${url.pathname} is missing: run \`npm run build\` (or set FLOTILLA_DEV=1 to run from source)\n`);
    process.exit(1);
  }
  await import(url.href);
}
