// The console in Chromium against a bench's control plane (issue 16): time from navigation to the fleet
// table rendered, a keystroke in each of the fleet page's filters until the table shows its result, and
// navigation to the rollouts and cohorts pages (which read the fleet too) until their content shows.
// The assets are cached first (a returning operator's load); each figure is the median of `repeat`.
import { ensureConsoleBuilt, launchBrowser } from '../test/helpers/browser.ts';

export interface ConsoleTimes {
  /** Navigation → "Showing N of N" with the table's first row in the DOM. */
  fleetRender: number;
  /** A label selector typed at once → the count shows the filtered rows. */
  selectorFilter: number;
  /** One keystroke in the search box → the count changes. */
  searchKeystroke: number;
  /** Navigation → the rollouts page's rollout cards. */
  rolloutsRender: number;
  /** Navigation → the cohorts page's cohort table row for `cohort`. */
  cohortsRender: number;
}

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * `total` devices in the fleet; `selector` matches `matching` of them; `search` is a search text whose
 * last keystroke changes the shown count; `cohort` is a cohort name the cohorts page lists.
 */
export async function timeConsolePages(o: { url: string; token: string; total: number; selector: string; matching: number; search: string; cohort: string; repeat: number }): Promise<ConsoleTimes> {
  ensureConsoleBuilt();
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    page.setDefaultTimeout(120_000);
    await page.addInitScript((token) => sessionStorage.setItem('flotilla.token', token), o.token);
    await page.goto(`${o.url}/tokens`); // the assets into the browser's cache
    await page.getByRole('heading', { level: 1, name: 'API tokens' }).waitFor();

    const navigate = async (path: string, ready: () => Promise<void>) => {
      const ms: number[] = [];
      for (let i = 0; i < o.repeat; i++) {
        await page.goto(`${o.url}/tokens`);
        await page.getByRole('heading', { level: 1, name: 'API tokens' }).waitFor();
        const t = performance.now();
        await page.goto(`${o.url}${path}`);
        await ready();
        ms.push(performance.now() - t);
      }
      return median(ms);
    };
    const fleetReady = async () => {
      await page.getByText(`Showing ${o.total} of ${o.total}`).waitFor();
      await page.locator('[role=row][aria-rowindex="2"]').waitFor();
    };
    const fleetRender = await navigate('/', fleetReady);

    // In the page: set an input's value, fire its input event, wait frame by frame until the count reads `until`
    // (or, with `until` null, differs from before). The time includes the render that shows it.
    const typeInto = (label: string, value: string, until: string | null) =>
      page.evaluate(
        async ({ label, value, until }) => {
          // No named functions in here: the bench's transpiler would wrap them in a helper the page lacks.
          const input = [...document.querySelectorAll('label')].find((l) => l.textContent?.startsWith(label))!.querySelector('input')!;
          const before = document.querySelector('p[aria-live]')?.textContent ?? '';
          const t = performance.now();
          input.value = value;
          input.dispatchEvent(new Event('input', { bubbles: true }));
          for (;;) {
            await new Promise(requestAnimationFrame);
            const now = document.querySelector('p[aria-live]')?.textContent ?? '';
            if (until === null ? now !== before : now.startsWith(until)) return performance.now() - t;
          }
        },
        { label, value, until },
      );
    const selectorMs: number[] = [];
    const searchMs: number[] = [];
    for (let i = 0; i < o.repeat; i++) {
      selectorMs.push(await typeInto('Label selector', o.selector, `Showing ${o.matching} of ${o.total}`));
      await typeInto('Label selector', '', `Showing ${o.total} of ${o.total}`);
      await typeInto('Search', o.search.slice(0, -1), null);
      searchMs.push(await typeInto('Search', o.search, null));
      await typeInto('Search', '', `Showing ${o.total} of ${o.total}`);
    }

    const rolloutsRender = await navigate('/rollouts', () => page.getByRole('heading', { level: 1, name: 'Rollouts' }).waitFor());
    const cohortsRender = await navigate('/cohorts', () => page.getByRole('cell', { name: o.cohort, exact: true }).first().waitFor());
    return { fleetRender, selectorFilter: median(selectorMs), searchKeystroke: median(searchMs), rolloutsRender, cohortsRender };
  } finally {
    await browser.close();
  }
}
