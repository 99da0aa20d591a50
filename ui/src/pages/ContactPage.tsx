// One contact: profile, tags, lists, scores, deals, and one timeline of events, emails (with
// their opens and clicks) and automation runs (with their step trail and Temporal UI link).
import { useState } from "react";
import { Link, useParams } from "react-router-dom";
import {
  type TimelineEmail,
  type TimelineEvent,
  type TimelineItem,
  type TimelineRun,
  useContact,
  useTimeline,
} from "../api/queries";
import { contactName, errorText, formatDate } from "./format";

const text = (value: unknown) => (value === null || value === undefined || value === "" ? "—" : String(value));

function EventItem({ item }: { item: TimelineEvent }) {
  const keys = Object.keys(item.data ?? {});
  return (
    <>
      <strong>Event {item.name}</strong>
      {keys.length > 0 && <code className="inline-data">{JSON.stringify(item.data)}</code>}
    </>
  );
}

function EmailItem({ item }: { item: TimelineEmail }) {
  const { opens, clicks } = item;
  return (
    <>
      <strong>Email “{text(item.subject)}”</strong>
      <span className="muted">
        {item.automation ? ` from ${item.automation}` : ""}
        {item.step ? ` · step ${item.step}` : ""}
      </span>
      <div className="muted">
        {opens.length} open{opens.length === 1 ? "" : "s"} · {clicks.length} click{clicks.length === 1 ? "" : "s"}
      </div>
      {clicks.length > 0 && (
        <ul className="sub-list">
          {clicks.map((click, i) => (
            <li key={i}>
              clicked {text(click.url)} · {formatDate(click.at)}
              {click.suspected_bot ? " (suspected link scanner)" : ""}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

function RunItem({ item }: { item: TimelineRun }) {
  return (
    <>
      <strong>
        Run of <Link to={`/automations/${encodeURIComponent(item.automation)}`}>{item.automation}</Link>
      </strong>
      <span className="muted">
        {" "}
        v{item.version} · {item.status}
        {item.reason ? ` (${item.reason})` : ""}
        {item.current_step ? ` · at ${item.current_step}` : ""}
      </span>
      {" · "}
      <a className="temporal-link" href={item.temporal_ui_url} target="_blank" rel="noreferrer">
        open in Temporal UI ↗
      </a>
      {item.steps.length > 0 && (
        <ol className="trail" aria-label="Step trail">
          {item.steps.map((step) => (
            <li key={step.seq}>
              <code>{step.step}</code> <span className="muted">{step.type}</span> · {step.outcome}
              {step.reason ? ` (${step.reason})` : ""} <span className="muted">{formatDate(step.at)}</span>
            </li>
          ))}
        </ol>
      )}
      {item.goals.length > 0 && <div className="muted small">goals achieved: {item.goals.join(", ")}</div>}
    </>
  );
}

function TimelineEntry({ item }: { item: TimelineItem }) {
  switch (item.kind) {
    case "event":
      return <EventItem item={item} />;
    case "email":
      return <EmailItem item={item} />;
    case "run":
      return <RunItem item={item} />;
  }
}

function Timeline({ id }: { id: string }) {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const timeline = useTimeline(id, cursors[cursors.length - 1]);
  const items = timeline.data?.items ?? [];
  return (
    <div className="card">
      <h2>Timeline</h2>
      {timeline.error && <p className="error">{errorText(timeline.error)}</p>}
      {items.length === 0 && !timeline.isPending && <p className="muted">Nothing happened yet.</p>}
      <ul className="timeline">
        {items.map((item, i) => (
          <li key={`${item.kind}-${item.id}-${i}`} className={`tl-${item.kind}`} data-kind={item.kind}>
            <time dateTime={item.at}>{formatDate(item.at)}</time>
            <div>
              <TimelineEntry item={item} />
            </div>
          </li>
        ))}
      </ul>
      <div className="pager">
        <button disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          Newer
        </button>
        <button disabled={!timeline.data?.next} onClick={() => timeline.data?.next && setCursors([...cursors, timeline.data.next])}>
          Older
        </button>
      </div>
    </div>
  );
}

export function ContactPage() {
  const { id = "" } = useParams();
  const contact = useContact(id);
  const c = contact.data;
  if (contact.error) {
    return (
      <section>
        <h1>Contact {id}</h1>
        <p role="alert" className="error">
          {errorText(contact.error)}
        </p>
      </section>
    );
  }
  if (!c) return <p>Loading…</p>;
  const scores = Object.entries(c.scores ?? {});
  return (
    <section className="contact-page">
      <h1>{contactName(c)}</h1>
      <div className="contact-grid">
        <div className="card">
          <h2>Profile</h2>
          <dl className="profile">
            <dt>Email</dt>
            <dd>{text(c.email)}</dd>
            <dt>Name</dt>
            <dd>{text([c.first_name, c.last_name].filter(Boolean).join(" "))}</dd>
            <dt>Phone</dt>
            <dd>{text(c.phone)}</dd>
            {Object.entries(c.fields ?? {}).map(([key, value]) => (
              <div key={key} className="contents">
                <dt>{key}</dt>
                <dd>{text(value)}</dd>
              </div>
            ))}
            <dt>Created</dt>
            <dd>{formatDate(c.created_at)}</dd>
          </dl>
          <h2>Tags</h2>
          <p>{c.tags.length ? c.tags.map((tag) => <span key={tag} className="chip">{tag}</span>) : <span className="muted">none</span>}</p>
          <h2>Lists</h2>
          <p>
            {c.lists.length ? c.lists.map((l) => <span key={l.list} className="chip">{l.list} · {l.status}</span>) : <span className="muted">none</span>}
          </p>
          <h2>Scores</h2>
          <p>{scores.length ? scores.map(([name, value]) => <span key={name} className="chip">{name}: {value}</span>) : <span className="muted">none</span>}</p>
          <h2>Deals</h2>
          {c.deals.length ? (
            <ul className="plain">
              {c.deals.map((deal) => (
                <li key={deal.id}>
                  {deal.title} · {deal.formatted_value} · {deal.status}
                  {deal.stage ? ` · ${deal.stage}` : ""}
                </li>
              ))}
            </ul>
          ) : (
            <p className="muted">none</p>
          )}
        </div>
        <Timeline id={id} />
      </div>
    </section>
  );
}
