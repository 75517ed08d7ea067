import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, saveKey, setUnauthorizedHandler, storedKey, type WhoAmI } from './api.ts';
import { ErrorBox, Loading, Toasts } from './components.tsx';
import { live } from './events.ts';
import { useLiveStatus } from './hooks.ts';
import { href, onLinkClick, useRoute, type Route } from './router.ts';
import { JobPage } from './pages/Job.tsx';
import { Login } from './pages/Login.tsx';
import { Overview } from './pages/Overview.tsx';
import { QueuePage } from './pages/Queue.tsx';
import { WorkersPage } from './pages/Workers.tsx';
import './styles.css';

type Auth = { status: 'checking' } | { status: 'need-key'; message: string | null } | { status: 'ok'; me: WhoAmI } | { status: 'error'; error: Error };

type Theme = 'auto' | 'light' | 'dark';

function applyTheme(theme: Theme): void {
  if (theme === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}

function initialTheme(): Theme {
  try {
    const t = localStorage.getItem('conveyor.theme');
    if (t === 'light' || t === 'dark') return t;
  } catch {
    // no storage
  }
  return 'auto';
}

function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(initialTheme);
  useEffect(() => applyTheme(theme), [theme]);
  const next: Record<Theme, Theme> = { auto: 'dark', dark: 'light', light: 'auto' };
  const labels: Record<Theme, string> = { auto: '◐ Auto', dark: '☾ Dark', light: '☀ Light' };
  return (
    <button
      type="button"
      class="btn ghost small"
      title="Theme: follows the system (auto), dark or light"
      onClick={() => {
        const t = next[theme];
        setTheme(t);
        try {
          if (t === 'auto') localStorage.removeItem('conveyor.theme');
          else localStorage.setItem('conveyor.theme', t);
        } catch {
          // no storage
        }
      }}
    >
      {labels[theme]}
    </button>
  );
}

function LiveIndicator() {
  const status = useLiveStatus();
  const text = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', off: 'Offline' }[status];
  return (
    <span class={`live live-${status}`} title="Updates arrive through the server's event stream" data-testid="live-status">
      <span class="dot" aria-hidden="true" />
      {text}
    </span>
  );
}

function Page({ route, me }: { route: Route; me: WhoAmI }) {
  const canAdmin = me.scopes.includes('admin');
  switch (route.page) {
    case 'overview':
      return <Overview />;
    case 'workers':
      return <WorkersPage />;
    case 'queue':
      return <QueuePage key={route.queue} route={route} canAdmin={canAdmin} />;
    case 'job':
      return <JobPage key={`${route.queue}/${route.id}`} queue={route.queue} id={route.id} canAdmin={canAdmin} />;
    default:
      return (
        <div class="page">
          <h1>Page not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>. <a href={href.overview()}>Back to the overview</a>.
          </p>
        </div>
      );
  }
}

function App() {
  const [auth, setAuth] = useState<Auth>({ status: 'checking' });
  const route = useRoute();

  const check = async (key: string | null, remember: boolean | null): Promise<string | null> => {
    try {
      const me = await api.whoami(key);
      if (remember !== null) saveKey(key, remember);
      setAuth({ status: 'ok', me });
      live.restart();
      return null;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        if (remember === null) {
          saveKey(null, false);
          setAuth({ status: 'need-key', message: key ? err.message : null });
        }
        return err.message;
      }
      if (remember === null) setAuth({ status: 'error', error: err as Error });
      return (err as Error).message;
    }
  };

  useEffect(() => {
    setUnauthorizedHandler((message) => {
      saveKey(null, false);
      live.stop();
      setAuth({ status: 'need-key', message });
    });
    void check(storedKey(), null);
    return () => live.stop();
  }, []);

  useEffect(() => {
    const titles: Record<Route['page'], string> = { overview: 'Overview', workers: 'Workers', queue: 'Queue', job: 'Job', notfound: 'Not found' };
    const detail = route.page === 'queue' ? ` ${route.queue}` : route.page === 'job' ? ` ${route.id} · ${route.queue}` : '';
    document.title = `${titles[route.page]}${detail} · conveyor`;
  }, [route]);

  const me = auth.status === 'ok' ? auth.me : null;
  return (
    <div class="app" onClick={onLinkClick}>
      <header class="topbar">
        <a class="brand" href={href.overview()}>
          <svg viewBox="0 0 16 16" width="20" height="20" aria-hidden="true">
            <rect x="1" y="6" width="14" height="4" rx="2" fill="var(--accent)" />
            <circle cx="4" cy="8" r="1.2" fill="#fff" />
            <circle cx="8" cy="8" r="1.2" fill="#fff" />
            <circle cx="12" cy="8" r="1.2" fill="#fff" />
          </svg>
          conveyor
        </a>
        {me && (
          <nav class="nav">
            <a href={href.overview()} aria-current={route.page === 'overview' || route.page === 'queue' || route.page === 'job' ? 'page' : undefined}>
              Queues
            </a>
            <a href={href.workers()} aria-current={route.page === 'workers' ? 'page' : undefined}>
              Workers
            </a>
          </nav>
        )}
        <div class="topbar-right">
          {me && <LiveIndicator />}
          {me && !me.scopes.includes('admin') && (
            <span class="badge readonly" title="This key has no admin scope: actions are hidden">
              read-only
            </span>
          )}
          <ThemeToggle />
          {me?.authRequired && (
            <button
              type="button"
              class="btn ghost small"
              title={`Signed in with key ${me.name ?? ''} (${me.keyId})`}
              onClick={() => {
                saveKey(null, false);
                live.stop();
                setAuth({ status: 'need-key', message: null });
              }}
            >
              Sign out
            </button>
          )}
        </div>
      </header>
      <main class="main">
        {auth.status === 'checking' && <Loading label="Connecting to the server…" />}
        {auth.status === 'error' && (
          <div class="page">
            <ErrorBox error={auth.error} retry={() => void check(storedKey(), null)} />
          </div>
        )}
        {auth.status === 'need-key' && <Login message={auth.message} onSubmit={(key, remember) => check(key, remember)} />}
        {me && <Page route={route} me={me} />}
      </main>
      <Toasts />
    </div>
  );
}

render(<App />, document.getElementById('app')!);
