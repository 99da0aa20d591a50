// The automations: status, version, triggers, running / completed counts, goal rate; create,
// duplicate, activate / deactivate. Polls every few seconds.
import { useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { type AutomationListItem, useAutomations, useDuplicate, useSetStatus } from "../api/queries";
import { errorText, percent } from "./format";

function Row({ item }: { item: AutomationListItem }) {
  const navigate = useNavigate();
  const setStatus = useSetStatus();
  const duplicate = useDuplicate();
  const active = item.status === "active";
  return (
    <tr>
      <td>
        <Link to={`/automations/${encodeURIComponent(item.id)}`}>{item.name}</Link>
        <div className="muted">{item.id}</div>
      </td>
      <td>
        <span className={`badge ${active ? "badge-on" : "badge-off"}`}>{item.status}</span>
      </td>
      <td className="num">v{item.version}</td>
      <td>{item.triggers?.length ? item.triggers.join(", ") : <span className="muted">API only</span>}</td>
      <td className="num">{item.counts?.running ?? "—"}</td>
      <td className="num">{item.counts?.completed ?? "—"}</td>
      <td className="num">{percent(item.goal_rate)}</td>
      <td className="actions">
        <button
          onClick={() => setStatus.mutate({ id: item.id, active: !active })}
          disabled={setStatus.isPending}
          aria-label={`${active ? "Deactivate" : "Activate"} ${item.name}`}
        >
          {active ? "Deactivate" : "Activate"}
        </button>
        <button
          onClick={() => {
            const name = window.prompt("Name of the copy", `${item.name} (copy)`);
            if (name) duplicate.mutate({ id: item.id, name }, { onSuccess: (saved) => navigate(`/automations/${encodeURIComponent(saved.id)}`) });
          }}
          disabled={duplicate.isPending}
          aria-label={`Duplicate ${item.name}`}
        >
          Duplicate
        </button>
        {(setStatus.error || duplicate.error) && (
          <div role="alert" className="error">
            {errorText(setStatus.error || duplicate.error)}
          </div>
        )}
      </td>
    </tr>
  );
}

export function AutomationsPage() {
  const automations = useAutomations();
  const [filter, setFilter] = useState("");
  const items = (automations.data ?? []).filter((a) =>
    `${a.name} ${a.id}`.toLowerCase().includes(filter.trim().toLowerCase()),
  );
  return (
    <section>
      <div className="page-head">
        <h1>Automations</h1>
        <input
          type="search"
          aria-label="Filter automations"
          placeholder="Filter by name"
          value={filter}
          onChange={(e) => setFilter(e.target.value)}
        />
        <Link className="button primary" to="/automations/new">
          New automation
        </Link>
      </div>
      {automations.isPending && <p>Loading…</p>}
      {automations.error && (
        <p role="alert" className="error">
          {errorText(automations.error)}
        </p>
      )}
      {automations.data && (
        <div className="card table-card">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col" className="num">Version</th>
                <th scope="col">Triggers</th>
                <th scope="col" className="num">Running</th>
                <th scope="col" className="num">Completed</th>
                <th scope="col" className="num">Goal rate</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((item) => (
                <Row key={item.id} item={item} />
              ))}
              {items.length === 0 && (
                <tr>
                  <td colSpan={8} className="muted">
                    No automation yet. Create one with “New automation”.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
