import type { ScheduleView } from '../../../shared/api.js';
import { useAction } from '../actions.js';
import { api } from '../api.js';
import { absolute } from '../format.js';
import { useLive } from '../live.js';
import { Link } from '../router.js';
import { Problem } from './Problem.js';
import { Time } from './Time.js';

/** What happens to ticks missed while no server ran, in words. */
const CATCH_UP: Record<ScheduleView['catchUp'], string> = {
  skip: 'missed ticks are skipped',
  latest: 'the latest missed tick runs',
  all: 'every missed tick runs',
};

/** The cron schedules (schedules.list) with their next run times, and pause/resume for each. */
export function Schedules() {
  const { data, failure, reload } = useLive('schedules', () => api.schedules.list.query(), { poll: true });
  const { busy, answer, run } = useAction();

  const toggle = (s: ScheduleView) =>
    run(async () => {
      const now = s.paused ? await api.schedules.resume.mutate({ name: s.name }) : await api.schedules.pause.mutate({ name: s.name });
      await reload();
      const next = now.nextRuns[0];
      return now.paused
        ? `Paused ${now.name}: it makes no job until it is resumed.`
        : `Resumed ${now.name}: next run ${next ? absolute(next) : 'none'}; ticks due while it was paused are not made.`;
    });

  const schedules = data?.schedules ?? [];
  return (
    <section aria-labelledby="h-schedules">
      <h2 id="h-schedules">Schedules</h2>
      <Problem failure={failure} what="read the schedules" />
      <p role="status" class={`notice${answer && !answer.ok ? ' refused' : ''}`} data-testid="schedule-answer">
        {answer?.text}
      </p>
      {data && schedules.length === 0 && (
        <p>
          No cron schedules. Declare them in the job registry (<code>schedules</code>) or create them with <code>schedules.upsert</code>.
        </p>
      )}
      {schedules.length > 0 && (
        <div class="table-wrap">
          <table class="cards" data-testid="schedules">
            <caption class="visually-hidden">Cron schedules and their next run times</caption>
            <thead>
              <tr>
                <th scope="col">Schedule</th>
                <th scope="col">Makes</th>
                <th scope="col">Cron</th>
                <th scope="col">Next runs</th>
                <th scope="col">Last run</th>
                <th scope="col">State</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {schedules.map((s) => (
                <tr key={s.name} data-schedule={s.name}>
                  <th scope="row" data-label="Schedule">
                    {s.name}
                    <div class="muted small">{s.source === 'registry' ? 'from the registry' : 'made with the API'}</div>
                  </th>
                  <td data-label="Makes">
                    {s.type}
                    <div class="muted small">in {s.queue ?? "its type's queue"}</div>
                  </td>
                  <td data-label="Cron">
                    <code>{s.cron}</code>
                    <div class="muted small">
                      {s.timezone ?? 'UTC'}; {CATCH_UP[s.catchUp]}
                      {s.allowOverlap ? '' : '; no overlap'}
                    </div>
                  </td>
                  <td data-label="Next runs" data-testid="next-runs">
                    {s.nextRuns.length === 0 ? (
                      <span class="muted">{s.paused ? 'none while paused' : 'none'}</span>
                    ) : (
                      <ol class="plain">
                        {s.nextRuns.map((at) => (
                          <li key={at.toISOString()}>
                            <Time at={at} absolute />
                          </li>
                        ))}
                      </ol>
                    )}
                  </td>
                  <td data-label="Last run">
                    <Time at={s.lastRunAt} empty="never" />
                    {s.lastJobId && (
                      <div class="small">
                        <Link href={`/jobs/${s.lastJobId}`}>its job</Link>
                      </div>
                    )}
                  </td>
                  <td data-label="State">
                    <span class={`badge ${s.paused ? 'paused' : 'running'}`}>{s.paused ? 'paused' : 'active'}</span>
                  </td>
                  <td class="row-actions">
                    <button type="button" class="small" aria-disabled={busy ? 'true' : undefined} onClick={() => void toggle(s)}>
                      {s.paused ? 'Resume' : 'Pause'}
                      <span class="visually-hidden"> schedule {s.name}</span>
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
