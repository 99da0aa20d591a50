// Placeholder: the builder (ui/src/builder/**) is written on its own branch.
import { useParams } from "react-router-dom";

export function BuilderPage() {
  const { id } = useParams();
  return (
    <section>
      <h1>{id ? `Edit ${id}` : "New automation"}</h1>
      <p>The builder is coming.</p>
    </section>
  );
}
