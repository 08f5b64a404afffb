{#-
  Every job's log totals agree with the deduplicated raw history: job_log_events never holds more
  lines or entries than were counted, and holds exactly as many while none of the job's log
  events can have expired (audit mode, or the first one is inside the retention).
-#}
{{ config(meta={'dagster': {'ref': {'name': 'job_log_totals'}}}) }}

{% call leave_out_workflows_in_flight() %}
with
    counted as (
        select
            user_id,
            workflow_id,
            job_id,
            sum(lines) as lines,
            sum(entries) as entries,
            min(first_event_at) as first_event_at
        from {{ ref('job_log_totals') }}
        group by user_id, workflow_id, job_id
    ),
    stored as (
        select
            user_id,
            workflow_id,
            job_id,
            toUInt64(countIf(is_line)) as lines,
            toUInt64(sum(count)) as entries
        from {{ ref('job_log_events') }} final
        group by user_id, workflow_id, job_id
    )
select
    user_id,
    workflow_id,
    job_id,
    counted.lines as counted_lines,
    stored.lines as stored_lines,
    counted.entries as counted_entries,
    stored.entries as stored_entries
from counted
full outer join stored using (user_id, workflow_id, job_id)
where
    stored.lines > counted.lines
    or stored.entries > counted.entries
    or (
        ({{ logs_recomputable('toDate(counted.first_event_at)') }})
        and (stored.lines != counted.lines or stored.entries != counted.entries)
    )
{% endcall %}
