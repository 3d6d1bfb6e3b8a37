/**
 * Slack's HTTP requests to Warden (Slack's HTTP mode): checked against the app's signing secret,
 * then handed to Bolt as its own HTTP receiver would, and answered once Bolt acknowledges them.
 * Nothing is parsed or acted on before the signature over the raw body is checked.
 */
import { verifySlackRequest, type App } from '@slack/bolt';
import { WardenError } from '../../domain/errors.js';
import type { DeliveredRequests } from '../delivered-requests.js';

/** Slack's window: a request whose timestamp is further than this from now is refused (replays). */
const MAX_SKEW_SECONDS = 5 * 60;
/** Slack waits 3 s for the answer; a request nobody acknowledges by then is answered as unhandled, as Bolt's receiver does. */
const ACK_WINDOW_MS = 3_000;

/**
 * Refuses a request Slack did not sign now: the `v0=` HMAC-SHA256 of `v0:<timestamp>:<raw body>`
 * under the signing secret, compared in constant time by Bolt's verifySlackRequest, which also
 * refuses a timestamp more than 5 minutes old; one more than 5 minutes ahead is refused here.
 */
export function assertSignedBySlack(signingSecret: string, headers: Headers, rawBody: string, nowMs = Date.now()): void {
  const signature = headers.get('x-slack-signature');
  const timestamp = Number(headers.get('x-slack-request-timestamp') ?? NaN);
  const refused = (why: string) => new WardenError('unauthorized', `not a request signed by Slack: ${why}`, 401);
  if (!signature || !Number.isInteger(timestamp)) throw refused('X-Slack-Signature and X-Slack-Request-Timestamp are required');
  if (Math.abs(nowMs / 1000 - timestamp) > MAX_SKEW_SECONDS) throw refused('the timestamp is more than 5 minutes from now');
  try {
    verifySlackRequest({
      signingSecret,
      body: rawBody,
      headers: { 'x-slack-signature': signature, 'x-slack-request-timestamp': timestamp },
      nowMilliseconds: nowMs,
    });
  } catch {
    throw refused('the signature does not match');
  }
}

/**
 * Refuses a signed request Slack already delivered: the same signature and timestamp again, within
 * the 5 minutes its timestamp is taken for (after them, assertSignedBySlack refuses it anyway).
 * Call it once the signature is checked, so only Slack's own requests are remembered.
 */
export function assertFirstDelivery(delivered: DeliveredRequests, headers: Headers, nowMs = Date.now()): void {
  const timestamp = Number(headers.get('x-slack-request-timestamp'));
  const id = `${timestamp}:${headers.get('x-slack-signature')}`;
  if (!delivered.firstDelivery(id, (timestamp + MAX_SKEW_SECONDS) * 1000, nowMs))
    throw new WardenError('unauthorized', 'a request Slack already delivered: a replay is refused', 401);
}

/**
 * Slack's check of a Request URL (Event Subscriptions sends it when the URL is set): a signed
 * `url_verification` whose `challenge` the answer must carry back. Null for any other request.
 */
export function urlVerificationAnswer(body: Record<string, unknown>): Response | null {
  if (body.type !== 'url_verification') return null;
  if (typeof body.challenge !== 'string') throw new WardenError('bad_request', 'a url_verification request carries a challenge', 400);
  return Response.json({ challenge: body.challenge });
}

/** The request's payload as Bolt takes it: interactions come as a form field `payload` of JSON, events as JSON. */
export function slackRequestBody(contentType: string | null, rawBody: string): Record<string, unknown> {
  try {
    if (contentType?.startsWith('application/x-www-form-urlencoded')) {
      const payload = new URLSearchParams(rawBody).get('payload');
      if (payload) return JSON.parse(payload) as Record<string, unknown>;
    } else if (contentType?.startsWith('application/json')) {
      return JSON.parse(rawBody) as Record<string, unknown>;
    }
  } catch {
    // Falls through to the refusal below.
  }
  throw new WardenError('bad_request', 'a Slack request carries a JSON body or a form field `payload` of JSON', 400);
}

/** Bolt's receiver interface, with nothing to start: the API's route hands Bolt each request. */
export const API_ROUTE_RECEIVER = { init: () => undefined, start: async () => undefined, stop: async () => undefined };

/** Hands a checked request to Bolt; the HTTP answer goes out when a listener acknowledges it. */
export function dispatchToBolt(app: App, body: Record<string, unknown>): Promise<Response> {
  return new Promise((resolve) => {
    const unanswered = setTimeout(() => resolve(new Response(null, { status: 404 })), ACK_WINDOW_MS);
    const answer = (response: Response) => (clearTimeout(unanswered), resolve(response));
    app
      .processEvent({ body, ack: async () => answer(new Response(null, { status: 200 })) })
      .catch(() => answer(new Response(null, { status: 500 })));
  });
}
