// Debian's Chromium driven by playwright-core for the console's browser tests: headless, a fresh
// profile per run, and the console built once if web/dist is missing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const REPO = path.resolve(import.meta.dirname, '..', '..');
export const ARTIFACTS = path.join(REPO, 'test-artifacts', 'web');

/** Fails loudly (never skips) when the browser is not installed: CI must install it. */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the console's browser tests need Debian's Chromium (apt-get install -y chromium; .ci/run installs it)`);
}

/** Builds web/dist when it is missing (npm ci builds it through `prepare`). */
export function ensureConsoleBuilt(): void {
  if (existsSync(path.join(REPO, 'web', 'dist', 'index.html'))) return;
  const r = spawnSync(process.execPath, [path.join(REPO, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', 'web/vite.config.ts'], { cwd: REPO, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the console failed:\n${r.stdout}\n${r.stderr}`);
}

export async function launchBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  requireChromium();
  const profile = await mkdtemp(path.join(tmpdir(), 'flotilla-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1280, height: 800 },
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

// Controls without an accessible name show in an aria snapshot as e.g. `- textbox` with no quoted name.
const UNNAMED = /^\s*- (textbox|combobox|checkbox|button|spinbutton|searchbox|link|radio)(?: \[[^\]]*\])?:?$/m;

/** Fails when a control on the page has no accessible name; returns the snapshot. */
export async function assertLabelled(p: Page, where: string): Promise<string> {
  const snap = await p.locator('body').ariaSnapshot();
  assert.doesNotMatch(snap, UNNAMED, `${where}: a control without an accessible name:\n${snap}`);
  return snap;
}

/**
 * Opens the console at `url`, signs in with `token` and waits for the first page: the level-1 heading
 * `heading` (the fleet's by default), or any heading matching a RegExp (e.g. an empty fleet's).
 */
export async function signIn(p: Page, url: string, token: string, heading: string | RegExp = 'Fleet'): Promise<void> {
  await p.goto(url + '/');
  await p.getByLabel('API token').fill(token);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByRole('heading', typeof heading === 'string' ? { level: 1, name: heading } : { name: heading }).waitFor();
}
