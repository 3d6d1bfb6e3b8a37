/** The console's frame (navigation, who is signed in, sign-out) and the small pieces every page shares. */
import type { Child } from 'hono/jsx';
import type { Identity } from '../../domain/roles.js';
import { CONSOLE_PATH } from './sessions.js';

export const PAGES = [
  ['approvals', 'Approvals'],
  ['agents', 'Agents'],
  ['conversations', 'Conversations'],
  ['audit', 'Audit'],
  ['system', 'System'],
] as const;
export type PageName = (typeof PAGES)[number][0];

// htmx must not evaluate code from attributes (script-src 'self' forbids it anyway) nor add inline styles.
// A refusal or failure keeps its status and is still shown: its words take the place of the answer.
const HTMX_CONFIG = JSON.stringify({
  allowEval: false,
  allowScriptTags: false,
  includeIndicatorStyles: false,
  historyCacheSize: 0,
  responseHandling: [
    { code: '204', swap: false },
    { code: '[23]..', swap: true },
    { code: '[45]..', swap: true, error: true },
  ],
});

export function Document(props: { title: string; children: Child; bodyAttributes?: Record<string, string> }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="htmx-config" content={HTMX_CONFIG} />
        <title>{props.title} · Warden</title>
        <link rel="stylesheet" href={`${CONSOLE_PATH}/assets/console.css`} />
        <script src={`${CONSOLE_PATH}/assets/htmx.min.js`} defer></script>
        <script src={`${CONSOLE_PATH}/assets/console.js`} defer></script>
      </head>
      <body {...props.bodyAttributes}>{props.children}</body>
    </html>
  );
}

/** A signed-in page: the navigation, who is signed in, and every htmx request sends the session's CSRF token. */
export function Page(props: { title: string; active: PageName; identity: Identity; csrfToken: string; children: Child }) {
  const { identity } = props;
  return (
    <Document title={props.title} bodyAttributes={{ 'hx-headers': JSON.stringify({ 'x-csrf-token': props.csrfToken }) }}>
      <a class="skip" href="#main">
        Skip to the content
      </a>
      <header class="top">
        <a class="brand" href={`${CONSOLE_PATH}/approvals`}>
          Warden
        </a>
        <nav aria-label="Console pages">
          {PAGES.map(([name, label]) => (
            <a href={`${CONSOLE_PATH}/${name}`} aria-current={name === props.active ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <div class="who">
          <span id="signed-in-as">
            {identity.name} <span class={`role role-${identity.role}`}>{identity.role}</span>
          </span>
          <form method="post" action={`${CONSOLE_PATH}/sign-out`}>
            <CsrfField token={props.csrfToken} />
            <button type="submit">Sign out</button>
          </form>
        </div>
      </header>
      <main id="main">
        <h1>{props.title}</h1>
        {props.children}
      </main>
    </Document>
  );
}

export const CsrfField = (props: { token: string }) => <input type="hidden" name="csrf" value={props.token} />;

/** A time as people read it: relative (kept current by console.js) and absolute in UTC. */
export function Time(props: { at: string | null | undefined; now?: number }) {
  if (!props.at) return <span class="muted">—</span>;
  const at = new Date(props.at);
  const absolute = absoluteTime(props.at);
  return (
    <time datetime={at.toISOString()} data-relative="" title={absolute}>
      <span class="rel">{relativeTime(at.getTime(), props.now ?? Date.now())}</span> <span class="abs">({absolute})</span>
    </time>
  );
}

export const absoluteTime = (at: string) => `${new Date(at).toISOString().slice(0, 19).replace('T', ' ')} UTC`;

/** "in 4 min", "12 s ago": the same words console.js writes. */
export function relativeTime(at: number, now: number): string {
  const seconds = Math.round((at - now) / 1000);
  const size = Math.abs(seconds);
  const [value, unit] =
    size < 60
      ? [size, 's']
      : size < 3600
        ? [Math.floor(size / 60), 'min']
        : size < 86400
          ? [Math.floor(size / 3600), 'h']
          : [Math.floor(size / 86400), 'd'];
  return seconds >= 0 ? `in ${value} ${unit}` : `${value} ${unit} ago`;
}

/** A link to a workflow in the Temporal Web UI (agents and actions are workflows of the same id). */
export function WorkflowLink(props: { ui: string; namespace: string; workflowId: string }) {
  const href = `${props.ui.replace(/\/$/, '')}/namespaces/${encodeURIComponent(props.namespace)}/workflows/${encodeURIComponent(props.workflowId)}`;
  return (
    <a class="temporal" href={href} target="_blank" rel="noopener noreferrer">
      workflow in Temporal
    </a>
  );
}

export const Empty = (props: { children: Child }) => <p class="empty">{props.children}</p>;

/** An error a page shows in place of what it could not load. */
export const Problem = (props: { children: Child }) => (
  <p class="problem" role="alert">
    {props.children}
  </p>
);

export const Badge = (props: { value: string | null | undefined }) => (
  <span class={`badge badge-${props.value ?? 'unknown'}`}>{props.value ?? 'unknown'}</span>
);

/** A table that scrolls sideways on a narrow screen rather than squeezing its columns. */
export const Table = (props: { headings: string[]; children: Child; class?: string }) => (
  <div class="table-wrap">
    <table class={props.class}>
      <thead>
        <tr>
          {props.headings.map((h) => (
            <th scope="col">{h}</th>
          ))}
        </tr>
      </thead>
      <tbody>{props.children}</tbody>
    </table>
  </div>
);
