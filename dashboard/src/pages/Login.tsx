import { useState } from 'preact/hooks';

export function Login({ message, onSubmit }: { message: string | null; onSubmit: (key: string, remember: boolean) => Promise<string | null> }) {
  const [key, setKey] = useState('');
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <div class="page login">
      <form
        class="card login-card"
        onSubmit={async (e) => {
          e.preventDefault();
          if (key.trim() === '') return;
          setBusy(true);
          setError(await onSubmit(key.trim(), remember));
          setBusy(false);
        }}
      >
        <h1>Sign in</h1>
        <p>This server needs an API key. A key with the <code>read</code> scope shows every page; <code>admin</code> also allows retry, cancel, pause and the other actions.</p>
        {message && !error && <p class="notice">{message}</p>}
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          spellcheck={false}
          placeholder="cvk_…"
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
          autoFocus
          required
        />
        <label class="check">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember((e.target as HTMLInputElement).checked)} />
          Remember on this device (otherwise the key is forgotten when this tab closes)
        </label>
        {error && (
          <p class="error-text" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="btn primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
        <p class="muted small">
          Create a key on the server's machine: <code>conveyor keys create --name dashboard --scopes read</code>
        </p>
      </form>
    </div>
  );
}
