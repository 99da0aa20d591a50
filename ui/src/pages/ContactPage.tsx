export function ContactPage() {
  return <section><h1>ContactPage</h1></section>;
}
