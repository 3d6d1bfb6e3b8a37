/** The check on Slack's HTTP requests: the v0 signature over the raw body, the 5-minute window, replays, url_verification. */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deliveredRequests } from '../../channels/delivered-requests.js';
import { assertFirstDelivery, assertSignedBySlack, slackRequestBody, urlVerificationAnswer } from '../../channels/slack/http-requests.js';

const SECRET = '8f742231b10e8888abcd99yyyzzz85a5';
const NOW_MS = 1_800_000_000_000;
const BODY = `payload=${encodeURIComponent(JSON.stringify({ type: 'block_actions', user: { id: 'U1' } }))}`;
const sign = (body: string, timestamp: number, secret = SECRET) =>
  `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
const headers = (signature: string | null, timestamp: number | string | null) =>
  new Headers({
    ...(signature === null ? {} : { 'x-slack-signature': signature }),
    ...(timestamp === null ? {} : { 'x-slack-request-timestamp': String(timestamp) }),
  });
const check =
  (h: Headers, body = BODY) =>
  () =>
    assertSignedBySlack(SECRET, h, body, NOW_MS);

describe('assertSignedBySlack', () => {
  const now = NOW_MS / 1000;

  it('takes a request signed now, or within 5 minutes either way', () => {
    for (const t of [now, now - 300, now + 300]) expect(check(headers(sign(BODY, t), t))).not.toThrow();
  });

  it.each([
    ['another secret', headers(sign(BODY, now, 'another-secret'), now), /signature does not match/],
    ['a body changed after signing', headers(sign(`${BODY}x`, now), now), /signature does not match/],
    ['another timestamp than the signed one', headers(sign(BODY, now - 1), now), /signature does not match/],
    ['a stale timestamp, correctly signed', headers(sign(BODY, now - 301), now - 301), /more than 5 minutes/],
    ['a timestamp ahead, correctly signed', headers(sign(BODY, now + 301), now + 301), /more than 5 minutes/],
    ['no signature', headers(null, now), /are required/],
    ['no timestamp', headers(sign(BODY, now), null), /are required/],
    ['a timestamp that is no number', headers(sign(BODY, now), 'soon'), /are required/],
    ['another signature version', headers(sign(BODY, now).replace('v0=', 'v1='), now), /signature does not match/],
  ])('refuses %s with 401', (_, h, reason) => {
    expect(check(h)).toThrow(expect.objectContaining({ code: 'unauthorized', status: 401, message: expect.stringMatching(reason) }));
  });
});

describe('slackRequestBody', () => {
  it('reads an interaction from the form field payload, an event from JSON', () => {
    expect(slackRequestBody('application/x-www-form-urlencoded', BODY)).toEqual({ type: 'block_actions', user: { id: 'U1' } });
    expect(slackRequestBody('application/json; charset=utf-8', '{"type":"event_callback"}')).toEqual({ type: 'event_callback' });
  });

  it.each([
    ['a form without payload', 'application/x-www-form-urlencoded', 'token=x'],
    ['a payload that is not JSON', 'application/x-www-form-urlencoded', 'payload=%7Bnope'],
    ['another content type', 'text/plain', '{}'],
  ])('refuses %s with 400', (_, type, body) => {
    expect(() => slackRequestBody(type, body)).toThrow(/JSON body or a form field/);
  });
});

describe('assertFirstDelivery', () => {
  const now = NOW_MS / 1000;

  it('takes a signed request once while its window lasts, and another request of the same second', () => {
    const delivered = deliveredRequests('Slack');
    const first = headers(sign(BODY, now), now);
    expect(() => assertFirstDelivery(delivered, first, NOW_MS)).not.toThrow();
    for (const later of [NOW_MS, NOW_MS + 299_000]) {
      expect(() => assertFirstDelivery(delivered, first, later)).toThrow(
        expect.objectContaining({ code: 'unauthorized', status: 401, message: expect.stringMatching(/already delivered/) }),
      );
    }
    expect(() => assertFirstDelivery(delivered, headers(sign(`${BODY}x`, now), now), NOW_MS)).not.toThrow();
  });

  it('forgets a request once its timestamp is out of the window, which the signature check refuses anyway', () => {
    const delivered = deliveredRequests('Slack');
    assertFirstDelivery(delivered, headers(sign(BODY, now), now), NOW_MS);
    assertFirstDelivery(delivered, headers(sign(BODY, now + 1), now + 1), NOW_MS + 301_000);
    expect(delivered.size).toBe(1);
    expect(() => assertSignedBySlack(SECRET, headers(sign(BODY, now), now), BODY, NOW_MS + 301_000)).toThrow(/more than 5 minutes/);
  });
});

describe('urlVerificationAnswer', () => {
  it("answers Slack's url_verification with its challenge, and leaves any other request to Bolt", async () => {
    const answer = urlVerificationAnswer({ type: 'url_verification', token: 't', challenge: 'c-123' });
    expect(answer?.status).toBe(200);
    expect(await answer?.json()).toEqual({ challenge: 'c-123' });
    expect(urlVerificationAnswer({ type: 'block_actions' })).toBeNull();
    expect(() => urlVerificationAnswer({ type: 'url_verification' })).toThrow(/carries a challenge/);
  });
});
