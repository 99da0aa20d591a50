import { type FormEvent, useState } from "react";
import { useLocation, useNavigate } from "react-router-dom";
import { clearToken, setToken } from "../api/client";

export function SignInPage() {
  const navigate = useNavigate();
  const location = useLocation();
  const state = (location.state ?? {}) as { from?: string; expired?: boolean };
  const [token, setTokenText] = useState("");
  const [error, setError] = useState<string | null>(state.expired ? "Your token was refused: sign in again." : null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // Any protected read proves the token; the list is what the next page shows anyway.
      const answer = await fetch("/api/v1/automations", { headers: { "Api-Token": token.trim() } });
      if (!answer.ok) throw new Error(String(answer.status));
      setToken(token.trim());
      navigate(state.from && state.from !== "/signin" ? state.from : "/automations", { replace: true });
    } catch {
      clearToken();
      setError("This token was refused. Check it and try again.");
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="signin">
      <form onSubmit={submit} className="card signin-card" aria-labelledby="signin-title">
        <h1 id="signin-title">Cairn Studio</h1>
        <p>Sign in with an API token. It is kept for this tab only and forgotten when the tab closes.</p>
        <label htmlFor="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          value={token}
          onChange={(e) => setTokenText(e.target.value)}
          required
        />
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy || !token.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p className="hint">
          A token comes from <code>cairn token create</code>, or the one <code>make run</code> prints.
        </p>
      </form>
    </main>
  );
}
