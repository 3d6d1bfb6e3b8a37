/** How console handlers answer: a whole page, or for htmx only the part that changed. */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Child } from 'hono/jsx';
import { WardenError } from '../../domain/errors.js';
import { Document, Page, PAGES, Problem, type PageName } from './layout.js';
import { CONSOLE_PATH, type ConsoleEnv } from './sessions.js';

/** Where the console's links to the Temporal Web UI go. */
export interface ConsoleLinks {
  temporalUi: string;
  namespace: string;
}

export const renderPage = (c: Context<ConsoleEnv>, active: PageName, title: string, body: Child, status: ContentfulStatusCode = 200) =>
  c.html(
    <Page title={title} active={active} identity={c.get('identity')} csrfToken={c.get('session').csrfToken}>
      {body}
    </Page>,
    status,
  );

/** For a .catch: a WardenError becomes what a page shows in place of what it could not load; anything else is thrown on. */
export function problem(err: unknown): WardenError {
  if (err instanceof WardenError) return err;
  throw err;
}

/** The fragment for htmx; the same inside a whole page (with a way back) for a form posted without it. */
export function respond(c: Context<ConsoleEnv>, active: PageName, title: string, fragment: Child) {
  if (c.req.header('hx-request')) return c.html(<>{fragment}</>);
  return renderPage(
    c,
    active,
    title,
    <>
      {fragment}
      <p>
        <a href={`${CONSOLE_PATH}/${active}`}>Back</a>
      </p>
    </>,
  );
}

const PROBLEM_TITLES: Partial<Record<number, string>> = {
  401: 'Signed out',
  403: 'Not allowed',
  404: 'Not found',
  413: 'Too large',
  429: 'Too many requests',
};

/**
 * What went wrong, said as a console page with its status (to htmx, only the words, which the
 * page swaps in where the answer goes); without a session, a bare page with a way to sign in.
 */
export function problemPage(c: Context<ConsoleEnv>, status: ContentfulStatusCode, message: string) {
  if (c.req.header('hx-request')) return c.html(<Problem>{message}</Problem>, status);
  const title = PROBLEM_TITLES[status] ?? 'Something went wrong';
  if (!c.get('session'))
    return c.html(
      <Document title={title}>
        <main id="main" class="sign-in">
          <h1>{title}</h1>
          <Problem>{message}</Problem>
          <p>
            <a href={`${CONSOLE_PATH}/sign-in`}>Sign in</a>
          </p>
        </main>
      </Document>,
      status,
    );
  return renderPage(c, pageOf(c.req.path), title, <Problem>{message}</Problem>, status);
}

/** The page a console path belongs to, for the navigation (an action's page is one of Approvals'). */
function pageOf(path: string): PageName {
  const first = path.slice(CONSOLE_PATH.length + 1).split('/')[0];
  return PAGES.find(([name]) => name === first)?.[0] ?? 'approvals';
}
