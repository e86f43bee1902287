// FLOTILLA_SIM_CPU_PROFILE=<dir>: SIGUSR2 starts a V8 CPU profile of this simulator process, the next
// SIGUSR2 writes it as <dir>/sim-<pid>-<n>.cpuprofile (`node --import tsx bench/profile-summary.ts <file>`).
// For the fan-out bench, which profiles exactly the window from a deployment to its last verification
// (`node --cpu-prof` would mix in every device's enrollment and connection).
import { mkdir, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import path from 'node:path';

export function installCpuProfileToggle(dir: string | undefined): void {
  if (!dir) return;
  let session: Session | null = null;
  let n = 0;
  process.on('SIGUSR2', () => {
    void (async () => {
      if (!session) {
        session = new Session();
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval: 500 });
        await session.post('Profiler.start');
        return;
      }
      const s = session;
      session = null;
      const { profile } = await s.post('Profiler.stop');
      s.disconnect();
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, `sim-${process.pid}-${n++}.cpuprofile`), JSON.stringify(profile));
    })().catch((err) => process.stderr.write(`simulate: cpu profile: ${(err as Error).message}\n`));
  });
}
