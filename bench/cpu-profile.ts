// BENCH_CPU_PROFILE=<dir>: a V8 CPU profile of one timed part of a bench that runs the server in its
// own process (the ingest rows), written as <dir>/<name>.cpuprofile (open in Chrome DevTools, or
// summarise with `node bench/profile-summary.ts <file>`). Without the variable, `profiled` just runs `fn`.
import { mkdir, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import path from 'node:path';

export async function profiled<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const dir = process.env.BENCH_CPU_PROFILE;
  if (!dir) return fn();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, `${name}.cpuprofile`);
    await writeFile(file, JSON.stringify(profile));
    console.log(`# cpu profile: ${file}`);
  }
}
