{{ materialization_target_table(ref('job_current')) }}

with staged as (
    select
        *,
        -- later lifecycle stages win when two events share a timestamp
        tuple(event_time, transform(
            event_name, ['created', 'started', 'completed', 'failed', 'cancelled'],
            [1, 2, 3, 3, 3], 0
        )) as position
    from {{ ref('job_events') }}
)

select
    user_id,
    workflow_id,
    job_id,
    argMaxState(event_name, position) as last_event,
    -- an event without a status does not erase the one before it
    argMaxState(status, if(status != '', position, tuple(toDateTime64(0, 3, 'UTC'), toUInt8(0)))) as last_status,
    min(event_time) as first_event_time,
    max(event_time) as last_event_time,
    max(scheduled_at) as scheduled_at,
    max(started_at) as started_at,
    max(completed_at) as completed_at,
    count() as events
from staged
group by user_id, workflow_id, job_id
