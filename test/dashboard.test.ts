import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createTRPCClient, httpLink } from '@trpc/client';
import superjson from 'superjson';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// playwright-core is a dev dependency of the dashboard package (dashboard/package.json), not of the root.
import type { BrowserContext, Locator, Page } from '../dashboard/node_modules/playwright-core/index.js';
import { createQueueClient, createWorker, type QueueClient, type Worker } from '../client/index.js';
import { createApiKey } from '../server/auth.js';
import type { AppRouter } from '../server/routers/_app.js';
import { defineJobs } from '../shared/index.js';
import { waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const DASHBOARD_DIR = fileURLToPath(new URL('../dashboard/', import.meta.url));
const SHOTS_DIR = fileURLToPath(new URL('../test-output/dashboard/', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
const BUILD_HINT = 'build it first: npm ci --prefix dashboard --no-audit --no-fund && npm run build:dashboard';

const jobs = defineJobs({
  email: { payload: z.object({ to: z.string() }), queue: 'mail' },
  report: { payload: z.object({ n: z.number().int(), fail: z.boolean() }), queue: 'reports', maxRetries: 0 },
  // Fails every attempt, three in all (no backoff), each with its own error text.
  flaky: { payload: z.object({ why: z.string() }), queue: 'flaky', maxRetries: 2, backoff: { kind: 'fixed', delayMs: 0 } },
  // A flow's parent and its children.
  step: { payload: z.object({ n: z.number().int() }), queue: 'flows' },
});
type Jobs = typeof jobs;

/** What page.evaluate callbacks use of the page (the root tsconfig has no DOM lib). */
interface PageGlobals {
  document: { documentElement: { scrollWidth: number }; activeElement: { getAttribute(name: string): string | null; textContent: string | null; matches(selector: string): boolean; blur(): void } | null };
  requestAnimationFrame(callback: () => void): number;
  sessionStorage: { getItem(key: string): string | null };
  localStorage: { length: number };
  sameDocument?: boolean;
}

/** The counts the overview shows, keyed like its cells: `count-<queue>-<column>`. */
async function countsOnPage(page: Page): Promise<Record<string, number>> {
  return page.$$eval('[data-testid^="count-"]', (cells) =>
    Object.fromEntries(cells.map((cell) => [cell.getAttribute('data-testid') as string, Number((cell.textContent ?? '').replace(/\D/g, ''))])),
  );
}

/** The same counts as queues.stats gives them (to `trpc`, which must be allowed to ask). */
async function countsFromApi(trpc: TestServer['trpc']): Promise<Record<string, number>> {
  const { counts } = await trpc.queues.stats.query();
  const expected: Record<string, number> = {};
  for (const queue of new Set(counts.map((c) => c.queue))) {
    for (const column of ['pending', 'held', 'completed', 'failed', 'cancelled']) expected[`count-${queue}-${column}`] = 0;
  }
  for (const c of counts) {
    const column = c.status === 'claimed' || c.status === 'processing' ? 'held' : c.status;
    expected[`count-${c.queue}-${column}`] = (expected[`count-${c.queue}-${column}`] ?? 0) + c.count;
  }
  return expected;
}

const text = (page: Page, selector: string) => page.locator(selector).innerText();

/** Waits for `locator`; on a timeout the error says what `around` showed then (a card, a form), not only what was missing. */
async function shows(locator: Locator, around: Locator, timeout = 30_000): Promise<void> {
  try {
    await locator.waitFor({ timeout });
  } catch (error) {
    const shown = await around.innerText({ timeout: 1000 }).catch((e: Error) => `(unreadable: ${e.message})`);
    // innerText leaves out what the fields hold.
    const fields = await around
      .locator('input')
      .evaluateAll((inputs) => inputs.map((i) => `${i.id}=${JSON.stringify((i as unknown as { value: string }).value)}`).join(' '))
      .catch(() => '');
    throw new Error(`${(error as Error).message}\nit showed:\n${shown}\nfields: ${fields || '(none)'}`);
  }
}

describe('the dashboard, in a real browser', () => {
  let t: TestServer;
  let base: string;
  let context: BrowserContext;
  let page: Page;
  let producer: QueueClient<Jobs>;
  let userDataDir: string;
  const workers: Worker[] = [];
  /** Console errors of the pages (a CSP violation is one). */
  const consoleErrors: string[] = [];
  /** Input the server refuses on purpose (Chromium logs each 400 as a failed load). */
  let refusedOnPurpose = 0;
  let flakyIds: string[] = [];
  let flow: Awaited<ReturnType<QueueClient<Jobs>['enqueueFlow']>>;

  const startWorker = (options: Partial<Parameters<typeof createWorker<Jobs>>[0]>) => {
    const worker = createWorker<Jobs>({
      url: t.url,
      jobs,
      waitMs: 300,
      handlers: {
        email: async () => ({ sent: true }),
        report: async ({ n, fail }) => {
          if (fail) throw new Error(`report ${n} broke: upstream answered 502`);
          return { rows: n * 10 };
        },
        flaky: async ({ why }, ctx) => {
          throw new Error(`${why} (attempt ${ctx.attempt})`);
        },
        step: async ({ n }) => ({ n }),
      },
      ...options,
    });
    workers.push(worker);
    worker.start();
    return worker;
  };

  const watch = (p: Page) => {
    p.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(`${p.url()}: ${message.text()}`);
    });
    p.on('pageerror', (error) => consoleErrors.push(`${p.url()}: ${error.message}`));
    return p;
  };

  /** Full-page screenshots at 1280 px and 390 px, light and dark (or the ones named); at phone width nothing may scroll sideways. */
  const shoot = async (p: Page, name: string, only?: ReadonlyArray<readonly [1280 | 390, 'light' | 'dark']>) => {
    // No focus ring left over from an earlier step in the pictures.
    await p.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.blur());
    for (const [width, height] of [[1280, 900], [390, 844]] as const) {
      for (const colorScheme of ['light', 'dark'] as const) {
        if (only && !only.some(([w, c]) => w === width && c === colorScheme)) continue;
        await p.setViewportSize({ width, height });
        await p.emulateMedia({ colorScheme });
        await p.evaluate(() => new Promise<void>((resolve) => (globalThis as unknown as PageGlobals).requestAnimationFrame(() => (globalThis as unknown as PageGlobals).requestAnimationFrame(resolve))));
        await p.screenshot({ path: join(SHOTS_DIR, `${name}-${width}-${colorScheme}.png`), fullPage: true });
        if (width === 390) expect(await p.evaluate(() => (globalThis as unknown as PageGlobals).document.documentElement.scrollWidth), `${name} at ${width} px scrolls sideways`).toBeLessThanOrEqual(width);
      }
    }
    await p.setViewportSize({ width: 1280, height: 900 });
    await p.emulateMedia({ colorScheme: 'light' });
  };

  beforeAll(async () => {
    // Not built is a failure with the fix in its message, never a skip: CI builds it in .ci/run.
    if (!existsSync(join(DASHBOARD_DIR, 'dist', 'index.html'))) throw new Error(`The dashboard is not built (no dashboard/dist/index.html): ${BUILD_HINT}`);
    const playwrightPath = join(DASHBOARD_DIR, 'node_modules', 'playwright-core', 'index.mjs');
    if (!existsSync(playwrightPath)) throw new Error(`playwright-core is not installed in dashboard/node_modules: ${BUILD_HINT}`);
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it when absent)`);
    const { chromium } = (await import(pathToFileURL(playwrightPath).href)) as typeof import('../dashboard/node_modules/playwright-core/index.js');

    rmSync(SHOTS_DIR, { recursive: true, force: true });
    mkdirSync(SHOTS_DIR, { recursive: true });
    t = await startTestServer({ jobs, pollIntervalMs: 50 });
    base = t.url.replace(/\/trpc$/, '');
    producer = createQueueClient({ url: t.url, jobs });

    // Two queues: six emails left pending, five reports of which three fail for good.
    await producer.enqueueMany(Array.from({ length: 6 }, (_, i) => ({ type: 'email' as const, payload: { to: `user${i}@example.com` } })));
    await producer.enqueueMany(Array.from({ length: 5 }, (_, n) => ({ type: 'report' as const, payload: { n, fail: n % 2 === 0 } })));
    const reporter = startWorker({ queues: ['reports'], workerId: 'reports-worker' });
    await waitFor(async () => {
      const { counts } = await t.trpc.queues.stats.query();
      const done = counts.filter((c) => c.queue === 'reports' && (c.status === 'completed' || c.status === 'failed')).reduce((n, c) => n + c.count, 0);
      return done === 5;
    }, 10_000, 'the reports to finish');
    await reporter.stop();

    // Three flaky jobs that fail three attempts each (two for the same reason), and a flow of a parent and three children, all run.
    flakyIds = (await producer.enqueueMany(['disk full', 'disk full', 'upstream timeout'].map((why) => ({ type: 'flaky' as const, payload: { why } })))).map((j) => j.id);
    flow = await producer.enqueueFlow({ parent: { type: 'step', payload: { n: 0 } }, children: [1, 2, 3].map((n) => ({ type: 'step' as const, payload: { n } })) });
    const side = startWorker({ queues: ['flaky', 'flows'], workerId: 'side-worker' });
    await waitFor(async () => {
      const states = await Promise.all([...flakyIds, flow.id].map((id) => t.trpc.jobs.get.query({ id })));
      return states.every((j) => j.status === 'failed' || j.status === 'completed');
    }, 20_000, 'the flaky jobs to fail and the flow to complete');
    await side.stop();

    userDataDir = mkdtempSync(join(tmpdir(), 'skipq-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1280, height: 900 },
    });
    page = watch(await context.newPage());
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await context?.close();
    await producer?.close();
    await t?.stop();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it('serves the overview with a CSP and shows the counts queues.stats gives', async () => {
    const response = await page.goto(`${base}/`);
    expect(response?.status()).toBe(200);
    const headers = response?.headers() ?? {};
    expect(headers['content-security-policy']).toContain("script-src 'self'");
    expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(headers['x-content-type-options']).toBe('nosniff');
    // No inline script anywhere: every script is a file under /assets.
    const scripts = await page.$$eval('script', (list) => list.map((s) => ({ src: s.getAttribute('src'), inline: (s.textContent ?? '').trim().length })));
    expect(scripts.length).toBeGreaterThan(0);
    for (const s of scripts) {
      expect(s.src).toMatch(/^\/assets\/.+\.js$/);
      expect(s.inline).toBe(0);
    }

    await page.locator('[data-testid="count-mail-pending"]').filter({ hasText: '6' }).waitFor();
    // The first Tab stop is the skip link.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.textContent)).toBe('Skip to content');
    const expected = await countsFromApi(t.trpc);
    expect(expected).toMatchObject({ 'count-mail-pending': 6, 'count-reports-completed': 2, 'count-reports-failed': 3 });
    expect(await countsOnPage(page)).toEqual(expected);
  });

  it('updates a count and the throughput chart live from the events stream, not by polling, while a worker runs', async () => {
    await page.evaluate(() => ((globalThis as unknown as PageGlobals).sameDocument = true));
    // The page is on the events stream: the POLL_MS tick no longer reads the counts, only events do (and a resync after a minute of quiet).
    await page.locator('[data-testid="live-state"][data-mode="events"]').waitFor();
    expect(await text(page, '[data-testid="count-mail-completed"]')).toBe('0');
    const statsReads: string[] = [];
    const countReads = (r: { url(): string }) => {
      if (r.url().includes('queues.stats')) statsReads.push(r.url());
    };
    page.on('request', countReads);
    // Nothing moves for 3.5 s: polling every 1.5 s would have read twice.
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    expect(statsReads).toEqual([]);
    const mailer = startWorker({ queues: ['mail'], workerId: 'mail-worker' });
    await page.locator('[data-testid="count-mail-completed"]').filter({ hasText: '6' }).waitFor({ timeout: 10_000 });
    page.off('request', countReads);
    expect(statsReads.length).toBeGreaterThan(0);
    expect(await text(page, '[data-testid="count-mail-pending"]')).toBe('0');
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).sameDocument)).toBe(true);
    await mailer.stop();
    expect(await countsOnPage(page)).toEqual(await countsFromApi(t.trpc));
    // The chart counts each completed event: exactly the six mails, within about a second (it redraws once a second at most).
    await page.locator('[data-testid="finished-mail"][data-count="6"]').waitFor({ timeout: 5_000 });
    // Taken after the worker ran, so the throughput chart has something to show.
    await shoot(page, 'overview');
  });

  it('falls back to reading every 1.5 s when the events stream cannot be reached, and says so', async () => {
    // Not watched: Chromium logs each aborted stream request as a console error, which is the point here.
    const p = await context.newPage();
    // The stream's requests fail at the network: the page must still follow the counts.
    await p.route('**/trpc/events.jobs**', (route) => route.abort());
    await p.goto(`${base}/`);
    await p.locator('[data-testid="live-state"][data-mode="polling"]').waitFor({ timeout: 10_000 });
    expect(await text(p, '[data-testid="live-state"]')).toContain('read every 1.5 s');
    const before = Number(await text(p, '[data-testid="count-mail-pending"]'));
    const { id } = await producer.enqueue('email', { to: 'fallback@example.com' });
    await p.locator('[data-testid="count-mail-pending"]').filter({ hasText: String(before + 1) }).waitFor({ timeout: 10_000 });
    await t.trpc.jobs.cancel.mutate({ id });
    await p.close();
  });

  it('opens a failed job from the counts, shows its error and attempt, hides the payload until asked, and retries it', async () => {
    await page.locator('[data-testid="count-reports-failed"] a').click();
    await page.waitForURL(/\/jobs\?queue=reports&status=failed$/);
    const rows = page.locator('table[data-testid="jobs"] tbody tr');
    await rows.first().waitFor();
    expect(await rows.count()).toBe(3);
    expect(await page.$$eval('table[data-testid="jobs"] tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-status')))).toEqual(['failed', 'failed', 'failed']);
    await shoot(page, 'jobs');

    const id = (await rows.first().getAttribute('data-job')) as string;
    await rows.first().locator(`a[href="/jobs/${id}"]`).click();
    await page.waitForURL(`${base}/jobs/${id}`);
    await page.locator('[data-testid="job-status"]').filter({ hasText: 'failed' }).waitFor();
    const attempt = page.locator('table[data-testid="attempts"] tbody tr');
    expect(await attempt.count()).toBe(1);
    expect(await attempt.getAttribute('data-outcome')).toBe('failed');
    expect(await attempt.innerText()).toContain('reports-worker');
    expect(await attempt.locator('[data-testid="attempt-error"]').innerText()).toMatch(/report \d broke: upstream answered 502/);

    // The payload is not on the page until it is asked for; then it is a collapsible tree.
    expect(await page.locator('[data-testid="json-payload"]').count()).toBe(0);
    expect(await page.locator('main').innerText()).not.toContain('"fail"');
    await page.getByRole('button', { name: 'Show payload' }).click();
    const tree = page.locator('[data-testid="json-payload"]');
    await tree.waitFor();
    expect(await tree.innerText()).toContain('"fail"');
    await tree.locator('summary').first().click();
    expect(await tree.locator('.json-children').first().isVisible()).toBe(false);
    await shoot(page, 'job');

    await page.getByRole('button', { name: 'Retry', exact: true }).click();
    await page.locator('[data-testid="job-status"]').filter({ hasText: 'pending' }).waitFor();
    expect((await t.trpc.jobs.get.query({ id })).status).toBe('pending');
  });

  it('retries and cancels a selection after a confirmation that shows the count', async () => {
    await page.goto(`${base}/jobs?queue=reports&status=failed`);
    const rows = page.locator('table[data-testid="jobs"] tbody tr');
    await rows.first().waitFor();
    expect(await rows.count()).toBe(2);
    const failedIds = await page.$$eval('table[data-testid="jobs"] tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-job') as string));

    // Keyboard: Tab goes from the filters past the (disabled) bulk buttons to the select-all box; Space ticks it.
    await page.getByRole('button', { name: 'Refresh' }).focus();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.getAttribute('aria-label'))).toBe('Select every job on this page');
    await page.keyboard.press('Space');
    await page.getByRole('button', { name: 'Retry selected (2)' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    expect(await dialog.getByRole('heading').innerText()).toBe('Retry 2 jobs?');
    // Escape backs out and changes nothing.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    for (const id of failedIds) expect((await t.trpc.jobs.get.query({ id })).status).toBe('failed');

    await page.getByRole('button', { name: 'Retry selected (2)' }).click();
    await dialog.waitFor();
    await page.screenshot({ path: join(SHOTS_DIR, 'jobs-confirm-1280-light.png') });
    await dialog.getByRole('button', { name: 'Retry 2 jobs' }).click();
    await page.locator('[data-testid="notice"]').filter({ hasText: 'Retried 2 jobs.' }).waitFor();
    for (const id of failedIds) expect((await t.trpc.jobs.get.query({ id })).status).toBe('pending');

    // Three reports are pending now (one retried from its page, two here): cancel two of them.
    await page.getByLabel('Status').selectOption('pending');
    await page.waitForURL(/status=pending/);
    await page.locator('table[data-testid="jobs"] tbody tr[data-status="pending"]').nth(2).waitFor();
    expect(await rows.count()).toBe(3);
    const cancelIds = await page.$$eval('table[data-testid="jobs"] tbody tr', (trs) => trs.slice(0, 2).map((tr) => tr.getAttribute('data-job') as string));
    for (const id of cancelIds) await page.getByRole('checkbox', { name: `Select job ${id}` }).check();
    await page.getByRole('button', { name: 'Cancel selected (2)' }).click();
    await dialog.waitFor();
    expect(await dialog.getByRole('heading').innerText()).toBe('Cancel 2 jobs?');
    await dialog.getByRole('button', { name: 'Cancel 2 jobs' }).click();
    await page.locator('[data-testid="notice"]').filter({ hasText: 'Cancelled 2 jobs.' }).waitFor();
    for (const id of cancelIds) expect((await t.trpc.jobs.get.query({ id })).status).toBe('cancelled');
  });

  it("shows every attempt of a failed job with each attempt's worker, outcome and error, as jobs.attempts gives them", async () => {
    const id = flakyIds[0] as string;
    await page.goto(`${base}/jobs/${id}`);
    await page.locator('[data-testid="job-status"]').filter({ hasText: 'failed' }).waitFor();
    const { attempts } = await t.trpc.jobs.attempts.query({ id });
    expect(attempts.map((a) => a.outcome)).toEqual(['retry_scheduled', 'retry_scheduled', 'failed']);
    const rows = page.locator('table[data-testid="attempts"] tbody tr');
    await rows.nth(2).waitFor();
    const shown = await page.$$eval('table[data-testid="attempts"] tbody tr', (trs) =>
      trs.map((tr) => [Number(tr.getAttribute('data-attempt')), tr.getAttribute('data-outcome'), tr.querySelector('[data-testid="attempt-error"]')?.textContent, tr.querySelector('[data-label="Worker"]')?.textContent]),
    );
    expect(shown).toEqual(attempts.map((a) => [a.attempt, a.outcome, a.error, a.workerId]));
    expect(shown.map((row) => row[2])).toEqual(['Error: disk full (attempt 1)', 'Error: disk full (attempt 2)', 'Error: disk full (attempt 3)']);
    expect(await page.locator('[data-testid="flow"]').innerText()).toContain('Not part of a flow');
    await shoot(page, 'job-attempts');
  });

  it("shows a flow's children with their statuses on the parent's page, and the parent as a link on a child's", async () => {
    await page.goto(`${base}/jobs/${flow.id}`);
    await page.locator('[data-testid="job-status"]').filter({ hasText: 'completed' }).waitFor();
    const { children } = await t.trpc.jobs.children.query({ id: flow.id });
    expect(children).toHaveLength(3);
    await page.locator('table[data-testid="children"] tbody tr').nth(2).waitFor();
    const shown = await page.$$eval('table[data-testid="children"] tbody tr', (trs) => trs.map((tr) => [tr.getAttribute('data-child'), tr.getAttribute('data-status')]));
    expect(shown).toEqual(children.map((c) => [c.id, c.status]));
    expect(shown.map(([, status]) => status)).toEqual(['completed', 'completed', 'completed']);
    await shoot(page, 'job-flow');

    const child = children[1]?.id as string;
    await page.locator(`table[data-testid="children"] a[href="/jobs/${child}"]`).click();
    await page.waitForURL(`${base}/jobs/${child}`);
    const parentLink = page.locator(`[data-testid="flow-parent"] a[href="/jobs/${flow.id}"]`);
    await parentLink.waitFor();
    await parentLink.click();
    await page.waitForURL(`${base}/jobs/${flow.id}`);
    await page.locator('table[data-testid="children"]').waitFor();
  });

  it('filters by error text and retries every match after a confirmation with the count a dry run gives; the jobs become pending', async () => {
    await page.goto(`${base}/jobs?queue=flaky&status=failed`);
    const rows = page.locator('table[data-testid="jobs"] tbody tr');
    await rows.nth(2).waitFor();
    await page.getByLabel('Error contains').fill('disk full');
    await page.getByLabel('Error contains').press('Enter');
    await page.waitForURL(/error=disk\+full/);
    await page.locator('table[data-testid="jobs"] tbody tr').nth(1).waitFor();
    await page.waitForFunction(() => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('table[data-testid="jobs"] tbody tr').length === 2);
    const listed = await t.trpc.jobs.list.query({ queue: 'flaky', status: 'failed', errorContains: 'disk full' });
    expect(listed.jobs.map((j) => j.id).sort()).toEqual(flakyIds.slice(0, 2).sort());
    expect((await page.$$eval('table[data-testid="jobs"] tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-job') as string))).sort()).toEqual(flakyIds.slice(0, 2).sort());

    // A created-time range that ends before these jobs were made lists none of them.
    await page.getByRole('group', { name: 'Created' }).getByLabel('before').fill('2020-01-01T00:00:00');
    await page.locator('main').getByText('No jobs match these filters.').waitFor();
    await page.getByRole('group', { name: 'Created' }).getByLabel('before').fill('');
    await rows.nth(1).waitFor();

    const dry = await t.trpc.jobs.retryMany.mutate({ filter: { queue: 'flaky', status: 'failed', errorContains: 'disk full' }, limit: 10_000, dryRun: true });
    expect(dry).toMatchObject({ matched: 2, moved: 0 });
    await page.getByRole('button', { name: 'Retry every match…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    expect(await dialog.getByRole('heading').innerText()).toBe(`Retry ${dry.matched} jobs matching these filters?`);
    await shoot(page, 'jobs-confirm-matching', [[1280, 'light'], [390, 'dark']]);
    await dialog.getByRole('button', { name: `Retry ${dry.matched} jobs` }).click();
    await page.locator('[data-testid="notice"]').filter({ hasText: 'Retried 2 jobs.' }).waitFor();
    const after = await Promise.all(flakyIds.map((id) => t.trpc.jobs.get.query({ id })));
    expect(after.map((j) => j.status)).toEqual(['pending', 'pending', 'failed']);
    // The list (failed, "disk full") is empty now.
    await page.locator('main').getByText('No jobs match these filters.').waitFor();

    // A ticked selection is answered job by job: the pending two are refused with the server's reason, the failed one is retried.
    await page.goto(`${base}/jobs?queue=flaky`);
    await page.locator('table[data-testid="jobs"] tbody tr').nth(2).waitFor();
    await page.getByRole('checkbox', { name: 'Select every job on this page' }).check();
    await page.getByRole('button', { name: 'Retry selected (3)' }).click();
    await dialog.getByRole('button', { name: 'Retry 3 jobs' }).click();
    const notice = page.locator('[data-testid="notice"]').filter({ hasText: 'Retried 1 job' });
    await notice.waitFor();
    expect(await notice.innerText()).toContain('the server refused 2');
    const refused = await page.$$eval('[data-testid="refused"] li', (items) => items.map((li) => [li.getAttribute('data-job'), li.textContent]));
    expect(refused.map(([id]) => id).sort()).toEqual(flakyIds.slice(0, 2).sort());
    for (const [id, line] of refused) expect(line).toBe(`${id}: job ${id} is pending; only failed, cancelled jobs can be retried (WRONG_STATE)`);
    expect((await t.trpc.jobs.get.query({ id: flakyIds[2] as string })).status).toBe('pending');
  });

  /** The mail jobs the queue tests hold back and the probe claims once the queue is resumed. */
  let heldBack: string[] = [];

  it('pauses a queue from the keyboard: a claim gets nothing from it, the job page says why (explain), and after Resume the claim gets the jobs', async () => {
    heldBack = (await producer.enqueueMany(Array.from({ length: 3 }, (_, i) => ({ type: 'email' as const, payload: { to: `later${i}@example.com` } })))).map((j) => j.id);
    await page.goto(`${base}/queues`);
    const card = page.locator('section[data-queue="mail"]');
    const state = card.locator('[data-testid="state-mail"]');
    await state.filter({ hasText: 'running' }).waitFor();

    // Keyboard: from the queue's name, Tab reaches its Pause button (a real button, focus ring visible); Enter presses it.
    await card.getByRole('link', { name: 'mail', exact: true }).focus();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.textContent)).toBe('Pause queue mail');
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.matches(':focus-visible'))).toBe(true);
    await page.keyboard.press('Enter');
    await state.filter({ hasText: 'paused' }).waitFor();
    expect(await text(page, '[data-testid="answer-mail"]')).toContain('Paused mail');
    expect((await t.trpc.queues.list.query({})).queues.find((q) => q.name === 'mail')?.paused).toBe(true);
    expect((await t.trpc.worker.claim.mutate({ workerId: 'probe', queues: ['mail'], limit: 10, waitMs: 0 })).jobs).toEqual([]);

    // The job page gives explain's reasons, code for code.
    await page.goto(`${base}/jobs/${heldBack[0]}`);
    await page.locator('[data-testid="explain-code"]').first().waitFor();
    const codes = await page.$$eval('[data-testid="explain-code"]', (list) => list.map((c) => c.textContent));
    const explained = await t.trpc.jobs.explain.query({ id: heldBack[0] as string });
    expect(codes).toEqual(explained.reasons.map((r) => r.code));
    expect(codes).toContain('QUEUE_PAUSED');
    await shoot(page, 'job-explain', [[390, 'dark']]);

    await page.goto(`${base}/queues`);
    await card.getByRole('button', { name: 'Resume queue mail' }).click();
    await state.filter({ hasText: 'running' }).waitFor();
    expect(await text(page, '[data-testid="answer-mail"]')).toContain('Resumed mail');
    const claimed = await t.trpc.worker.claim.mutate({ workerId: 'probe', queues: ['mail'], limit: 10, waitMs: 0 });
    expect(claimed.jobs.map((j) => j.id).sort()).toEqual([...heldBack].sort());
  });

  it("edits a concurrency limit: the server's validation error shows beside the field and changes nothing, then queues.list has the new limits", async () => {
    const card = page.locator('section[data-queue="mail"]');
    await card.getByRole('button', { name: 'Edit limits of queue mail' }).click();
    const concurrency = card.getByLabel('Concurrency', { exact: true });
    await concurrency.fill('0');
    refusedOnPurpose++;
    await card.getByRole('button', { name: 'Save limits' }).click();
    const problem = card.locator('[data-testid="problem-concurrency"]');
    await problem.waitFor();
    expect(await problem.innerText()).toMatch(/>=\s*1/);
    expect(await concurrency.getAttribute('aria-invalid')).toBe('true');
    // Focus goes to the field the server refused.
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.getAttribute('id'))).toBe('limits-mail-concurrency');
    expect((await t.trpc.queues.list.query({})).queues.find((q) => q.name === 'mail')).toMatchObject({ concurrency: null, rateLimit: null });
    await page.screenshot({ path: join(SHOTS_DIR, 'queues-limit-refused-1280-light.png'), fullPage: true });

    await concurrency.fill('2');
    await card.getByLabel('Claims', { exact: true }).fill('100');
    await card.getByLabel('Per (ms)', { exact: true }).fill('1000');
    await card.getByLabel('Per concurrency key', { exact: true }).fill('3');
    await card.getByLabel('Completed and cancelled', { exact: true }).fill('7');
    await card.getByLabel('Failed', { exact: true }).fill('0');
    await card.getByRole('button', { name: 'Save limits' }).click();
    await shows(card.locator('[data-testid="concurrency-mail"]').filter({ hasText: 'at most 2 held at once' }), card);
    expect(await text(page, '[data-testid="rate-mail"]')).toBe('100 claims per 1 s');
    expect(await text(page, '[data-testid="key-concurrency-mail"]')).toBe('at most 3 held at once');
    expect(await text(page, '[data-testid="retention-mail"]')).toBe('7 days');
    expect(await text(page, '[data-testid="failed-retention-mail"]')).toBe('forever');
    expect((await t.trpc.queues.list.query({})).queues.find((q) => q.name === 'mail')).toMatchObject({
      concurrency: 2,
      rateLimit: { max: 100, periodMs: 1000 },
      keyConcurrency: 3,
      retentionDays: 7,
      failedRetentionDays: 0,
    });
    // Blank is the server's default again (null), not zero.
    await card.getByRole('button', { name: 'Edit limits of queue mail' }).click();
    await card.getByLabel('Completed and cancelled', { exact: true }).fill('');
    await card.getByRole('button', { name: 'Save limits' }).click();
    await shows(card.locator('[data-testid="retention-mail"]').filter({ hasText: "the server's default" }), card);
    expect((await t.trpc.queues.list.query({})).queues.find((q) => q.name === 'mail')).toMatchObject({ retentionDays: null, failedRetentionDays: 0, keyConcurrency: 3 });
  });

  it('lists the cron schedules with the next run times schedules.list gives, and pauses and resumes one', async () => {
    await t.trpc.schedules.upsert.mutate({ name: 'nightly-report', type: 'report', cron: '0 3 * * *', timezone: 'Europe/Zagreb', payload: { n: 7, fail: false } });
    const row = page.locator('tr[data-schedule="nightly-report"]');
    await row.waitFor();
    const nextRuns = async () => {
      const { schedules } = await t.trpc.schedules.list.query();
      return schedules.find((s) => s.name === 'nightly-report');
    };
    const shownRuns = () => row.locator('[data-testid="next-runs"] time').evaluateAll((list) => list.map((el) => el.getAttribute('datetime')));
    const listed = await nextRuns();
    expect(listed?.nextRuns).toHaveLength(3);
    expect(await shownRuns()).toEqual(listed?.nextRuns.map((d) => d.toISOString()));

    await row.getByRole('button', { name: 'Pause schedule nightly-report' }).click();
    await row.locator('.badge').filter({ hasText: 'paused' }).waitFor();
    expect(await nextRuns()).toMatchObject({ paused: true, nextRuns: [] });
    await shoot(page, 'queues');

    await row.getByRole('button', { name: 'Resume schedule nightly-report' }).click();
    await row.locator('.badge').filter({ hasText: 'active' }).waitFor();
    expect(await text(page, '[data-testid="schedule-answer"]')).toContain('Resumed nightly-report: next run');
    const resumed = await nextRuns();
    expect(resumed?.paused).toBe(false);
    expect(await shownRuns()).toEqual(resumed?.nextRuns.map((d) => d.toISOString()));
  });

  it('lists on the workers page the worker holding jobs and the one that completed them, as workers.list gives them', async () => {
    await page.goto(`${base}/workers`);
    const probe = page.locator('table[data-testid="workers"] tbody tr[data-worker="probe"]');
    await probe.waitFor();
    const { workers: listed } = await t.trpc.workers.list.query({});
    expect(listed.find((w) => w.workerId === 'probe')).toMatchObject({ held: 3, queues: ['mail'] });
    expect(listed.find((w) => w.workerId === 'mail-worker')).toMatchObject({ held: 0, completed: 6 });
    const shown = await page.$$eval('table[data-testid="workers"] tbody tr', (trs) =>
      trs.map((tr) => [tr.getAttribute('data-worker'), tr.querySelector('[data-label="Jobs held"]')?.textContent, tr.querySelector('[data-label="Completed in window"]')?.textContent]),
    );
    expect(shown).toEqual(listed.map((w) => [w.workerId, String(w.held), String(w.completed)]));
    for (const id of heldBack) expect(await probe.locator(`a[href="/jobs/${id}"]`).count()).toBe(1);
    await shoot(page, 'workers');
  });

  it('never sends payloads or results to a browser when the server hides them', async () => {
    const hidden = await startTestServer({ jobs, dashboard: { showPayloads: false } });
    try {
      const client = createQueueClient({ url: hidden.url, jobs });
      const { id } = await client.enqueue('email', { to: 'secret-recipient@example.com' });
      const answers: Array<Promise<string>> = [];
      const p = watch(await context.newPage());
      p.on('response', (r) => {
        // The events stream is one response that never ends (and carries no payloads).
        if (r.url().includes('/trpc/') && !r.url().includes('/trpc/events.jobs')) answers.push(r.text());
      });
      await p.goto(`${hidden.url.replace(/\/trpc$/, '')}/jobs/${id}`);
      await p.locator('[data-testid="job-status"]').filter({ hasText: 'pending' }).waitFor();
      expect(await p.getByRole('button', { name: 'Show payload' }).count()).toBe(0);
      expect(await p.locator('main').innerText()).toContain('Hidden: this server is set to never show payloads');
      const bodies = await Promise.all(answers);
      expect(bodies.some((b) => b.includes(id))).toBe(true);
      for (const body of bodies) expect(body).not.toContain('secret-recipient');
      // Clients that are not browsers still get the payload: this hides data from screens, it is not access control.
      expect((await client.get(id)).payload).toEqual({ to: 'secret-recipient@example.com' });
      await client.close();
      await p.close();
    } finally {
      await hidden.stop();
    }
  });

  it('asks for a key once keys exist, refuses a producer key, and accepts an admin key sent as Bearer', async () => {
    const producerKey = await createApiKey(t.server.pool, { role: 'producer' });
    const adminKey = await createApiKey(t.server.pool, { role: 'admin' });
    const p = watch(await context.newPage());
    const authHeaders: string[] = [];
    const eventRequests: Array<{ url: string; authorization: string }> = [];
    p.on('request', (r) => {
      if (r.url().includes('/trpc/events.jobs')) eventRequests.push({ url: r.url(), authorization: r.headers().authorization ?? '' });
      else if (r.url().includes('/trpc/')) authHeaders.push(r.headers().authorization ?? '');
    });
    await p.goto(`${base}/`);
    await p.getByRole('heading', { name: 'This server needs an API key' }).waitFor();
    // Nothing of the queues is shown before a key is accepted.
    expect(await p.locator('[data-testid="overview"]').count()).toBe(0);
    await shoot(p, 'key-prompt');

    await p.getByLabel('Admin API key').fill(producerKey.key);
    await p.getByRole('button', { name: 'Use key' }).click();
    const problem = p.getByRole('alert');
    await problem.filter({ hasText: 'producer key' }).waitFor();
    expect(await problem.innerText()).toContain('needs an admin key');
    expect(await p.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.getItem('skipq.apiKey'))).toBeNull();
    expect(await p.locator('[data-testid="overview"]').count()).toBe(0);
    await p.screenshot({ path: join(SHOTS_DIR, 'key-refused-1280-light.png'), fullPage: true });

    await p.getByLabel('Admin API key').fill(adminKey.key);
    await p.getByRole('button', { name: 'Use key' }).click();
    await p.locator('[data-testid="count-mail-completed"]').waitFor();
    const asAdmin = createTRPCClient<AppRouter>({ links: [httpLink({ url: t.url, transformer: superjson, headers: { authorization: `Bearer ${adminKey.key}` } })] });
    expect(await countsOnPage(p)).toEqual(await countsFromApi(asAdmin));
    expect(await p.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.getItem('skipq.apiKey'))).toBe(adminKey.key);
    expect(authHeaders.at(-1)).toBe(`Bearer ${adminKey.key}`);
    expect(await p.evaluate(() => (globalThis as unknown as PageGlobals).localStorage.length)).toBe(0);
    // The events stream takes the key from the same header (never from the URL), so the page runs on events with a key too.
    await p.locator('[data-testid="live-state"][data-mode="events"]').waitFor();
    const streams = eventRequests.filter((r) => r.authorization === `Bearer ${adminKey.key}`);
    expect(streams.length).toBeGreaterThan(0);
    for (const r of eventRequests) expect(r.url).not.toContain(adminKey.key);
    await p.close();

    // An admin key limited to the mail queue: an action on another queue shows the server's refusal where it was pressed, and keeps the page.
    const mailOnly = await createApiKey(t.server.pool, { role: 'admin', queues: ['mail'] });
    const q = watch(await context.newPage());
    await q.goto(`${base}/`);
    await q.getByLabel('Admin API key').fill(mailOnly.key);
    await q.getByRole('button', { name: 'Use key' }).click();
    await q.locator('[data-testid="count-mail-completed"]').waitFor();
    expect(await q.locator('[data-testid="count-reports-failed"]').count()).toBe(0);
    await q.goto(`${base}/jobs?queue=reports`);
    await q.getByRole('button', { name: 'Retry every match…' }).click();
    const refusal = q.locator('[data-testid="notice"]').filter({ hasText: 'The server refused' });
    await refusal.waitFor();
    expect(await refusal.innerText()).toBe('The server refused: this key may not use queue "reports"; it is limited to: mail (FORBIDDEN)');
    expect(await q.getByRole('heading', { name: 'Jobs' }).count()).toBe(1);
    await q.screenshot({ path: join(SHOTS_DIR, 'jobs-refused-1280-light.png'), fullPage: true });
    await q.close();

    // The first page, still open on the workers view, is refused at its next reading and asks for a key too.
    expect(page.url()).toBe(`${base}/workers`);
    await page.getByRole('heading', { name: 'This server needs an API key' }).waitFor({ timeout: 10_000 });
  });

  it('raised no script error and no CSP violation on any page', () => {
    // 401/403 answers during the key steps and the 400s asked for are logged by Chromium as failed loads; everything else counts.
    const unexpected = consoleErrors.filter((e) => !/status of 40[13]/.test(e));
    const badRequests = unexpected.filter((e) => /status of 400 /.test(e));
    expect(badRequests).toHaveLength(refusedOnPurpose);
    expect(unexpected.filter((e) => !badRequests.includes(e))).toEqual([]);
  });
});
