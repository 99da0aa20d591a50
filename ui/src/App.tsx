// The Studio's shell: the router, the query client and the top bar. Every page reads the API
// through TanStack Query; pages that show live numbers poll every few seconds.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useEffect } from "react";
import { BrowserRouter, Navigate, NavLink, Outlet, Route, Routes, useLocation, useNavigate } from "react-router-dom";
import { ApiError, clearToken, getToken, setUnauthorizedHandler } from "./api/client";
import { BuilderPage } from "./builder/BuilderPage";
import { SignInPage } from "./pages/SignInPage";
import { AutomationsPage } from "./pages/AutomationsPage";
import { AutomationPage } from "./pages/AutomationPage";
import { ContactsPage } from "./pages/ContactsPage";
import { ContactPage } from "./pages/ContactPage";

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      retry: (count, error) => count < 2 && !(error instanceof ApiError && error.status < 500),
      refetchOnWindowFocus: false,
    },
  },
});

export const LIVE_MS = 3000;

function RequireToken() {
  const location = useLocation();
  if (!getToken()) {
    return <Navigate to="/signin" replace state={{ from: location.pathname + location.search }} />;
  }
  return <Outlet />;
}

function Shell() {
  const navigate = useNavigate();
  useEffect(() => {
    setUnauthorizedHandler(() => {
      queryClient.clear();
      navigate("/signin", { replace: true, state: { expired: true } });
    });
  }, [navigate]);
  return (
    <div className="shell">
      <header className="topbar">
        <a className="brand" href="/">
          Cairn Studio
        </a>
        <nav aria-label="Main">
          <NavLink to="/automations">Automations</NavLink>
          <NavLink to="/contacts">Contacts</NavLink>
        </nav>
        <button
          className="link-button"
          onClick={() => {
            clearToken();
            queryClient.clear();
            navigate("/signin");
          }}
        >
          Sign out
        </button>
      </header>
      <main className="content">
        <Outlet />
      </main>
    </div>
  );
}

export function AppRoutes() {
  return (
    <Routes>
      <Route path="/signin" element={<SignInPage />} />
      <Route element={<RequireToken />}>
        <Route element={<Shell />}>
          <Route path="/" element={<Navigate to="/automations" replace />} />
          <Route path="/automations" element={<AutomationsPage />} />
          <Route path="/automations/new" element={<BuilderPage />} />
          <Route path="/automations/:id/edit" element={<BuilderPage />} />
          <Route path="/automations/:id" element={<AutomationPage />} />
          <Route path="/contacts" element={<ContactsPage />} />
          <Route path="/contacts/:id" element={<ContactPage />} />
          <Route path="*" element={<NotFound />} />
        </Route>
      </Route>
    </Routes>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        Nothing lives at this address. Go to the <NavLink to="/automations">automations</NavLink>.
      </p>
    </section>
  );
}

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <AppRoutes />
      </BrowserRouter>
    </QueryClientProvider>
  );
}
