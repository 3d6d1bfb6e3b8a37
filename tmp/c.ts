import { loadConfig } from '../domain/config.js';
for (const env of [{}, {WARDEN_ALERT_WEBHOOKS:'http://a/x, https://b/y'}, {WARDEN_ALERT_WEBHOOKS:'ftp://a', WARDEN_ALERT_SECRET:'x'.repeat(32)}, {WARDEN_ALERT_WEBHOOKS:'http://a/x', WARDEN_ALERT_SECRET:'x'.repeat(32)}, {WARDEN_ALERT_WEBHOOKS:'nope'}]) {
  try { const c = loadConfig(env as any); console.log(c.alertWebhooks, c.alertSecret?.length, c.alertCapacityPercent); } catch (e) { console.log((e as Error).message); }
}
