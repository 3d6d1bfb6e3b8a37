/** Reading timings out of a workflow's history (the benchmark's action path and command round trip). */
import type proto from '@temporalio/proto';

export type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

/** When the server recorded an event, in ms since the epoch. */
export const eventMillis = (e: HistoryEvent): number => Number(e.eventTime!.seconds) * 1000 + Math.round((e.eventTime!.nanos ?? 0) / 1e6);

/**
 * The time from scheduling the first activity of a type to its completion, in ms (retries
 * included); null when the history has no completed activity of that type.
 */
export function activityRoundTripMs(events: HistoryEvent[], activityType: string): number | null {
  const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activityType);
  if (!scheduled) return null;
  const completed = events.find(
    (e) => String(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? '') === String(scheduled.eventId),
  );
  return completed ? eventMillis(completed) - eventMillis(scheduled) : null;
}
