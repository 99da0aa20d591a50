export function AutomationPage() {
  return <section><h1>AutomationPage</h1></section>;
}
