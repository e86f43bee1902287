// Downloading: every file of the manifest, resumable, stream-hashed and capped at its signed size,
// with the bytes so far reported as one progress figure.
import type { DeploymentManifest } from '../../firmware-bundles/manifest.ts';
import type { UpdateDeps } from './deps.ts';

/** `giveUpAt`: the update's time bound (epoch ms); a server that keeps not answering fails the download then, naming why. */
export async function downloadBundleFiles(d: UpdateDeps, m: DeploymentManifest, dir: string, signal: AbortSignal, giveUpAt?: number): Promise<void> {
  const total = m.files.reduce((n, f) => n + f.size, 0);
  const done = new Map<string, number>();
  for (const file of m.files) {
    await d.downloader.fetchFile(file, dir, {
      signal,
      giveUpAt,
      onProgress: (bytes) => {
        done.set(file.path, bytes);
        let sum = 0;
        for (const v of done.values()) sum += v;
        d.reporter.setProgress(sum, total);
      },
    });
  }
  d.reporter.setProgress(total, total);
}
