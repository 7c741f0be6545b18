import type { AnchorHTMLAttributes, ComponentChildren, TargetedMouseEvent } from 'preact';
import { useEffect, useState } from 'preact/hooks';

/** The pages of the dashboard, as the URL names them. */
export type Route =
  | { page: 'overview' }
  | { page: 'jobs'; query: URLSearchParams }
  | { page: 'job'; id: string }
  | { page: 'queues' }
  | { page: 'workers'; query: URLSearchParams }
  | { page: 'missing'; path: string };

/** Reads the route from a path and query string. */
export function parseRoute(pathname: string, search: string): Route {
  const path = pathname.replace(/\/+$/, '') || '/';
  if (path === '/') return { page: 'overview' };
  if (path === '/jobs') return { page: 'jobs', query: new URLSearchParams(search) };
  const job = /^\/jobs\/([^/]+)$/.exec(path);
  if (job) return { page: 'job', id: decodeURIComponent(job[1] as string) };
  if (path === '/queues') return { page: 'queues' };
  if (path === '/workers') return { page: 'workers', query: new URLSearchParams(search) };
  return { page: 'missing', path };
}

const NAVIGATED = 'skipq:navigated';

/** Goes to `href` without reloading the page (history.pushState), then moves focus to the new page's heading. */
export function navigate(href: string, options: { replace?: boolean; state?: unknown; focus?: boolean } = {}): void {
  if (options.replace) history.replaceState(options.state ?? null, '', href);
  else history.pushState(options.state ?? null, '', href);
  window.dispatchEvent(new Event(NAVIGATED));
  if (options.focus === false) return;
  window.scrollTo(0, 0);
  // Screen readers and keyboard users start at the new page's heading, as after a page load.
  requestAnimationFrame(() => document.querySelector<HTMLElement>('main h1')?.focus());
}

/** The current route; re-renders on navigation and on the browser's back and forward. */
export function useRoute(): Route {
  const read = () => parseRoute(location.pathname, location.search);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const update = () => setRoute(read());
    window.addEventListener('popstate', update);
    window.addEventListener(NAVIGATED, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(NAVIGATED, update);
    };
  }, []);
  return route;
}

/** A real link (keyboard, middle click and "open in new tab" work) that navigates in place on a plain click. */
export function Link(props: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string; children?: ComponentChildren; state?: unknown }) {
  const { href, state, ...rest } = props;
  const onClick = (event: TargetedMouseEvent<HTMLAnchorElement>) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href, { state });
  };
  return <a {...rest} href={href} onClick={onClick} />;
}
