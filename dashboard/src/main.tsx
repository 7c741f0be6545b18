import { render } from 'preact';
import { useEffect } from 'preact/hooks';
import { auth, checkAccess, forgetKey } from './api.js';
import { KeyPrompt } from './components/KeyPrompt.js';
import { Job } from './pages/Job.js';
import { Jobs } from './pages/Jobs.js';
import { Overview } from './pages/Overview.js';
import { Queues } from './pages/Queues.js';
import { Workers } from './pages/Workers.js';
import { Link, useRoute, type Route } from './router.js';
import { useStore } from './store.js';
import './styles.css';

const NAV: Array<{ href: string; label: string; pages: ReadonlyArray<Route['page']> }> = [
  { href: '/', label: 'Overview', pages: ['overview'] },
  { href: '/jobs', label: 'Jobs', pages: ['jobs', 'job'] },
  { href: '/queues', label: 'Queues & schedules', pages: ['queues'] },
  { href: '/workers', label: 'Workers', pages: ['workers'] },
];

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'overview':
      return <Overview />;
    case 'jobs':
      return <Jobs query={route.query} />;
    case 'job':
      return <Job id={route.id} />;
    case 'queues':
      return <Queues />;
    case 'workers':
      return <Workers query={route.query} />;
    case 'missing':
      return (
        <>
          <h1 tabIndex={-1}>Not found</h1>
          <p>
            The dashboard has no page at <code>{route.path}</code>. <Link href="/">Go to the overview</Link>.
          </p>
        </>
      );
  }
}

function App() {
  const route = useRoute();
  const access = useStore(auth);
  useEffect(() => void checkAccess(), []);
  const titles: Record<Route['page'], string> = { overview: 'Overview', jobs: 'Jobs', job: 'Job', queues: 'Queues and schedules', workers: 'Workers', missing: 'Not found' };
  useEffect(() => {
    document.title = `${titles[route.page]} · skipq`;
  }, [route.page]);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/" class="brand" aria-label="skipq dashboard, overview">
          skipq
        </Link>
        {access.state === 'ok' && (
          <nav aria-label="Dashboard">
            <ul>
              {NAV.map((item) => (
                <li key={item.href}>
                  <Link href={item.href} aria-current={item.pages.includes(route.page) ? 'page' : undefined}>
                    {item.label}
                  </Link>
                </li>
              ))}
            </ul>
          </nav>
        )}
        {access.state === 'ok' && access.keyed && (
          <button type="button" class="small forget" onClick={forgetKey}>
            Forget key
          </button>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {access.state === 'checking' && <p class="muted">Connecting…</p>}
        {access.state === 'needed' && <KeyPrompt key={access.message ?? ''} message={access.message} />}
        {access.state === 'ok' && <Page route={route} />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
