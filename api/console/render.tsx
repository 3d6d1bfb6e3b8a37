/** How console handlers answer: a whole page, or for htmx only the part that changed. */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Child } from 'hono/jsx';
import { WardenError } from '../../domain/errors.js';
import { Page, type PageName } from './layout.js';
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
