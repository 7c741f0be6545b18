/** Settings the server writes into index.html's <meta name="skipq-dashboard"> (server/dashboard.ts). */
export interface DashboardConfig {
  /** false: the server hides payloads and results from browsers, and the dashboard offers no way to show them. */
  showPayloads: boolean;
  /** Where the tRPC endpoint is. */
  trpcPath: string;
}

function readConfig(): DashboardConfig {
  const defaults: DashboardConfig = { showPayloads: true, trpcPath: '/trpc' };
  const content = document.querySelector('meta[name="skipq-dashboard"]')?.getAttribute('content');
  if (!content) return defaults;
  try {
    const given = JSON.parse(content) as Partial<DashboardConfig>;
    return {
      showPayloads: given.showPayloads !== false,
      trpcPath: typeof given.trpcPath === 'string' ? given.trpcPath : defaults.trpcPath,
    };
  } catch {
    return defaults;
  }
}

/** This page's settings, read once. */
export const config: DashboardConfig = readConfig();
