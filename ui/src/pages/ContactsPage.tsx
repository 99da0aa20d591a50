// Contact search by email, name or tag, paged with the API's cursors (Next / Previous keep the
// cursors seen, so paging through 100,000 contacts never counts or skips rows).
import { type FormEvent, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { useContactSearch } from "../api/queries";
import { contactName, errorText, formatDate } from "./format";

const PAGE = 25;

export function ContactsPage() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const tag = params.get("tag") ?? "";
  const [qText, setQText] = useState(q);
  const [tagText, setTagText] = useState(tag);
  // The cursors of the pages before this one: Previous pops, Next pushes.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  const search = useContactSearch(q, tag, cursor, PAGE);
  const page = search.data;

  function submit(event: FormEvent) {
    event.preventDefault();
    const next = new URLSearchParams();
    if (qText.trim()) next.set("q", qText.trim());
    if (tagText.trim()) next.set("tag", tagText.trim());
    setParams(next);
    setCursors([null]);
  }

  return (
    <section>
      <h1>Contacts</h1>
      <form className="search-form card" onSubmit={submit} role="search">
        <label htmlFor="q">Email or name</label>
        <input id="q" type="search" value={qText} onChange={(e) => setQText(e.target.value)} />
        <label htmlFor="tag">Tag</label>
        <input id="tag" type="search" value={tagText} onChange={(e) => setTagText(e.target.value)} />
        <button type="submit" className="primary">
          Search
        </button>
      </form>
      {search.error && (
        <p role="alert" className="error">
          {errorText(search.error)}
        </p>
      )}
      <div className="card table-card">
        <table aria-busy={search.isFetching}>
          <thead>
            <tr>
              <th scope="col">Contact</th>
              <th scope="col">Email</th>
              <th scope="col">Tags</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {page?.items.map((contact) => (
              <tr key={contact.id}>
                <td>
                  <Link to={`/contacts/${contact.id}`}>{contactName(contact)}</Link>
                </td>
                <td>{contact.email ?? "—"}</td>
                <td>{contact.tags?.join(", ")}</td>
                <td>{formatDate(contact.created_at)}</td>
              </tr>
            ))}
            {page && page.items.length === 0 && (
              <tr>
                <td colSpan={4} className="muted">
                  No contact matches.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <div className="pager">
        <button disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          Previous
        </button>
        <span className="muted" aria-live="polite">
          Page {cursors.length}
        </span>
        <button disabled={!page?.next} onClick={() => page?.next && setCursors([...cursors, page.next])}>
          Next
        </button>
      </div>
    </section>
  );
}
