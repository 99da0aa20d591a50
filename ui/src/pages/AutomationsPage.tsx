export function AutomationsPage() {
  return <section><h1>AutomationsPage</h1></section>;
}
