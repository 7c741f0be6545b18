import { useState } from 'preact/hooks';
import { tryKey } from '../api.js';

/** Asks for an admin key when the server needs one; keeps it only if the server accepts it for admin calls. */
export function KeyPrompt({ message }: { message: string | null }) {
  const [key, setKey] = useState('');
  const [problem, setProblem] = useState<string | null>(message);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    if (!key.trim()) return setProblem('Enter a key.');
    setBusy(true);
    const refused = await tryKey(key);
    setBusy(false);
    if (refused) setProblem(refused);
  };
  return (
    <section class="key-prompt" aria-labelledby="key-title">
      <h1 id="key-title" tabIndex={-1}>
        This server needs an API key
      </h1>
      <p>
        Enter an <strong>admin</strong> key (<code>npm run keys -- create --role admin</code>). It is kept in this tab's session storage only and
        sent as <code>Authorization: Bearer</code>; closing the tab forgets it.
      </p>
      <form onSubmit={submit}>
        <label for="api-key">Admin API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autocomplete="off"
          spellcheck={false}
          placeholder="skq_…"
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
          aria-describedby={problem ? 'key-problem' : undefined}
          autofocus
        />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Use key'}
        </button>
      </form>
      {problem && (
        <p id="key-problem" class="problem" role="alert">
          {problem}
        </p>
      )}
    </section>
  );
}
