export function ContactsPage() {
  return <section><h1>ContactsPage</h1></section>;
}
