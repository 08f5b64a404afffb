-- model analytics_queue
-- config {"enabled": true, "engine": "Kafka()", "materialized": "incremental", "settings": {"date_time_input_format": "best_effort", "input_format_json_read_objects_as_strings": 1, "kafka_broker_list": "kafka-1:9092,kafka-2:9092", "kafka_flush_interval_ms": 250, "kafka_format": "JSONEachRow", "kafka_group_name": "analytics_analytics", "kafka_handle_error_mode": "stream", "kafka_max_block_size": 65536, "kafka_num_consumers": 1, "kafka_topic_list": "analytics"}}
select
    cast(null as Nullable(String)) as EventKey,
    cast(null as Nullable(String)) as UserID,
    cast(null as Nullable(String)) as WorkflowID,
    cast(null as Nullable(String)) as EventType,
    cast(null as Nullable(String)) as Data
    
where 0

-- model dead_letters
-- config {"enabled": true, "engine": "ReplacingMergeTree()", "materialized": "incremental", "order_by": "(topic, partition, offset)", "settings": {"allow_nullable_key": 1}}
select
    cast('' as LowCardinality(String)) as topic,
    cast(null as Nullable(UInt64)) as partition,
    cast(null as Nullable(UInt64)) as offset,
    cast('' as String) as raw_message,
    cast('' as String) as error,
    now64(3, 'UTC') as received_at
where 0

-- model dead_letters_from_analytics_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`dead_letters`

select
    _topic as topic,
    _partition as partition,
    _offset as offset,
    -- a message that parsed but breaks a rule has no _raw_message: its parsed fields stand in
    if(_raw_message != '', _raw_message, formatRowNoNewline('JSONEachRow', *)) as raw_message,
    multiIf(
    _error != '', _error,
    not (EventKey IS NOT NULL AND EventKey != ''), 'EventKey_is_required: EventKey is missing or empty',
    not (UserID IS NOT NULL AND UserID != ''), 'UserID_is_required: UserID is missing or empty',
    not (WorkflowID IS NOT NULL AND WorkflowID != ''), 'WorkflowID_is_required: WorkflowID is missing or empty',
    not (EventType IN ('WORKFLOWS', 'JOBS', 'LOGS')), 'EventType_is_known: EventType is not one of WORKFLOWS, JOBS, LOGS',
    not (Data IS NULL OR JSONType(Data) = 'Object'), 'Data_is_an_object: Data is not a JSON object',
    not (EventType != 'JOBS' OR JSONType(ifNull(Data, '{}'), 'job_execution_duration') IN ('Int64', 'UInt64', 'Double')), 'JOBS_have_a_duration: a JOBS event needs Data.job_execution_duration (seconds)',
    not (EventType != 'LOGS' OR JSONType(ifNull(Data, '{}'), 'count') IN ('Int64', 'UInt64')), 'LOGS_have_a_count: a LOGS event needs an integer Data.count',
    ''
  ) as error,
    now64(3, 'UTC') as received_at
from `analytics_compile`.`analytics_queue`
where not (_error = ''
      and (EventKey IS NOT NULL AND EventKey != '')
      and (UserID IS NOT NULL AND UserID != '')
      and (WorkflowID IS NOT NULL AND WorkflowID != '')
      and (EventType IN ('WORKFLOWS', 'JOBS', 'LOGS'))
      and (Data IS NULL OR JSONType(Data) = 'Object')
      and (EventType != 'JOBS' OR JSONType(ifNull(Data, '{}'), 'job_execution_duration') IN ('Int64', 'UInt64', 'Double'))
      and (EventType != 'LOGS' OR JSONType(ifNull(Data, '{}'), 'count') IN ('Int64', 'UInt64')))

-- model dead_letters_from_job_logs_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`dead_letters`

select
    _topic as topic,
    _partition as partition,
    _offset as offset,
    -- a message that parsed but breaks a rule has no _raw_message: its parsed fields stand in
    if(_raw_message != '', _raw_message, formatRowNoNewline('JSONEachRow', *)) as raw_message,
    multiIf(
    _error != '', _error,
    not (event_id IS NOT NULL AND event_id != ''), 'event_id_is_required: event_id is missing or empty',
    not (event_time IS NOT NULL), 'event_time_is_required: event_time is missing or not an ISO 8601 time',
    not (event_type = 'job_log'), 'event_type_is_job_log: event_type is not \'job_log\'',
    not (event_name IS NOT NULL AND event_name != ''), 'event_name_is_required: event_name is missing or empty',
    not (event_name IN ('created')), 'event_name_is_known: event_name is not one of created',
    not (user_id IS NOT NULL AND user_id != ''), 'user_id_is_required: user_id is missing or empty',
    not (workflow_id IS NOT NULL AND workflow_id != ''), 'workflow_id_is_required: workflow_id is missing or empty',
    not (job_id IS NOT NULL AND job_id != ''), 'job_id_is_required: job_id is missing or empty',
    not (count IS NULL OR count >= 1), 'count_is_positive: count must be an integer >= 1',
    ''
  ) as error,
    now64(3, 'UTC') as received_at
from `analytics_compile`.`job_logs_queue`
where not (_error = ''
      and (event_id IS NOT NULL AND event_id != '')
      and (event_time IS NOT NULL)
      and (event_type = 'job_log')
      and (event_name IS NOT NULL AND event_name != '')
      and (event_name IN ('created'))
      and (user_id IS NOT NULL AND user_id != '')
      and (workflow_id IS NOT NULL AND workflow_id != '')
      and (job_id IS NOT NULL AND job_id != '')
      and (count IS NULL OR count >= 1))

-- model dead_letters_from_jobs_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`dead_letters`

select
    _topic as topic,
    _partition as partition,
    _offset as offset,
    -- a message that parsed but breaks a rule has no _raw_message: its parsed fields stand in
    if(_raw_message != '', _raw_message, formatRowNoNewline('JSONEachRow', *)) as raw_message,
    multiIf(
    _error != '', _error,
    not (event_id IS NOT NULL AND event_id != ''), 'event_id_is_required: event_id is missing or empty',
    not (event_time IS NOT NULL), 'event_time_is_required: event_time is missing or not an ISO 8601 time',
    not (event_type = 'job'), 'event_type_is_job: event_type is not \'job\'',
    not (event_name IS NOT NULL AND event_name != ''), 'event_name_is_required: event_name is missing or empty',
    not (event_name IN ('created', 'started', 'completed', 'failed', 'cancelled')), 'event_name_is_known: event_name is not one of created, started, completed, failed, cancelled',
    not (user_id IS NOT NULL AND user_id != ''), 'user_id_is_required: user_id is missing or empty',
    not (workflow_id IS NOT NULL AND workflow_id != ''), 'workflow_id_is_required: workflow_id is missing or empty',
    not (job_id IS NOT NULL AND job_id != ''), 'job_id_is_required: job_id is missing or empty',
    not (event_name NOT IN ('completed', 'failed') OR (started_at IS NOT NULL AND completed_at IS NOT NULL AND completed_at >= started_at)), 'finished_job_has_its_times: a completed or failed job event needs started_at and completed_at, with completed_at >= started_at',
    ''
  ) as error,
    now64(3, 'UTC') as received_at
from `analytics_compile`.`jobs_queue`
where not (_error = ''
      and (event_id IS NOT NULL AND event_id != '')
      and (event_time IS NOT NULL)
      and (event_type = 'job')
      and (event_name IS NOT NULL AND event_name != '')
      and (event_name IN ('created', 'started', 'completed', 'failed', 'cancelled'))
      and (user_id IS NOT NULL AND user_id != '')
      and (workflow_id IS NOT NULL AND workflow_id != '')
      and (job_id IS NOT NULL AND job_id != '')
      and (event_name NOT IN ('completed', 'failed') OR (started_at IS NOT NULL AND completed_at IS NOT NULL AND completed_at >= started_at)))

-- model dead_letters_from_telemetry_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`dead_letters`

select
    _topic as topic,
    _partition as partition,
    _offset as offset,
    if(_raw_message != '', _raw_message, message) as raw_message,
    multiIf(
    _error != '', _error,
    not (isValidJSON(message) AND JSONType(message) = 'Object'), 'message_is_an_object: the message is not a JSON object',
    not (JSONType(message, 'event_id') = 'String' AND JSONExtractString(message, 'event_id') != ''), 'event_id_is_a_string: event_id is missing, empty or not a string',
    not (parseDateTime64BestEffortOrNull(JSONExtractString(message, 'event_time'), 3, 'UTC') IS NOT NULL), 'event_time_is_iso8601: event_time is missing or not an ISO 8601 time',
    not (JSONType(message, 'event_type') = 'String' AND JSONExtractString(message, 'event_type') != ''), 'event_type_is_a_string: event_type is missing, empty or not a string',
    not (JSONType(message, 'event_name') = 'String' AND JSONExtractString(message, 'event_name') != ''), 'event_name_is_a_string: event_name is missing, empty or not a string',
    ''
  ) as error,
    now64(3, 'UTC') as received_at
from `analytics_compile`.`telemetry_queue`
where not (_error = ''
      and (isValidJSON(message) AND JSONType(message) = 'Object')
      and (JSONType(message, 'event_id') = 'String' AND JSONExtractString(message, 'event_id') != '')
      and (parseDateTime64BestEffortOrNull(JSONExtractString(message, 'event_time'), 3, 'UTC') IS NOT NULL)
      and (JSONType(message, 'event_type') = 'String' AND JSONExtractString(message, 'event_type') != '')
      and (JSONType(message, 'event_name') = 'String' AND JSONExtractString(message, 'event_name') != ''))

-- model dead_letters_from_workflows_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`dead_letters`

select
    _topic as topic,
    _partition as partition,
    _offset as offset,
    -- a message that parsed but breaks a rule has no _raw_message: its parsed fields stand in
    if(_raw_message != '', _raw_message, formatRowNoNewline('JSONEachRow', *)) as raw_message,
    multiIf(
    _error != '', _error,
    not (event_id IS NOT NULL AND event_id != ''), 'event_id_is_required: event_id is missing or empty',
    not (event_time IS NOT NULL), 'event_time_is_required: event_time is missing or not an ISO 8601 time',
    not (event_type = 'workflow'), 'event_type_is_workflow: event_type is not \'workflow\'',
    not (event_name IS NOT NULL AND event_name != ''), 'event_name_is_required: event_name is missing or empty',
    not (event_name IN ('created', 'updated', 'terminated', 'deleted')), 'event_name_is_known: event_name is not one of created, updated, terminated, deleted',
    not (user_id IS NOT NULL AND user_id != ''), 'user_id_is_required: user_id is missing or empty',
    not (workflow_id IS NOT NULL AND workflow_id != ''), 'workflow_id_is_required: workflow_id is missing or empty',
    ''
  ) as error,
    now64(3, 'UTC') as received_at
from `analytics_compile`.`workflows_queue`
where not (_error = ''
      and (event_id IS NOT NULL AND event_id != '')
      and (event_time IS NOT NULL)
      and (event_type = 'workflow')
      and (event_name IS NOT NULL AND event_name != '')
      and (event_name IN ('created', 'updated', 'terminated', 'deleted'))
      and (user_id IS NOT NULL AND user_id != '')
      and (workflow_id IS NOT NULL AND workflow_id != ''))

-- model job_completions
-- config {"enabled": true, "engine": "ReplacingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, job_id)"}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    cast('' as LowCardinality(String)) as outcome,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as started_at,
    cast(0 as DateTime64(3, 'UTC')) as ended_at,
    cast(0 as UInt64) as duration_seconds,
    cast(0 as Float64) as duration,
    toFixedString('', 16) as dedup_key
where 0

-- model job_completions_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_completions`


with incoming as (
    select
        user_id,
        workflow_id,
        job_id,
        event_name as outcome,
        started_at,
        if(event_name = 'cancelled', event_time, assumeNotNull(completed_at)) as ended_at,
        if(event_name = 'cancelled', 0, toUInt64(intDiv(dateDiff('millisecond', started_at, completed_at), 1000)))
            as duration_seconds,
        if(event_name = 'cancelled', 0, dateDiff('millisecond', started_at, completed_at) / 1000) as duration,
        sipHash128('job_end', workflow_id, job_id) as dedup_key
    from `analytics_compile`.`job_events`
    where event_name in ('completed', 'failed', 'cancelled')
    order by event_time
    limit 1 by dedup_key
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('job_end', workflow_id, job_id) from `analytics_compile`.`job_events`)
  )

-- model job_duration_daily
-- config {"enabled": true, "engine": "AggregatingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, day)", "partition_by": "toYYYYMMDD(day)", "settings": {"index_granularity": 1024}}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('1970-01-01' as Date) as day,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(cast(0 as Float64)) as duration_seconds_quantiles
group by user_id, workflow_id, day
having 0

-- model job_duration_daily_from_job_completions_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_duration_daily`


select
    user_id,
    workflow_id,
    toDate(ended_at) as day,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(duration) as duration_seconds_quantiles
from `analytics_compile`.`job_completions`
where outcome in ('completed', 'failed')
group by all

-- model job_duration_daily_from_legacy_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_duration_daily`


select
    user_id,
    workflow_id,
    toDate(received_at) as day,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(job_execution_duration) as duration_seconds_quantiles
from `analytics_compile`.`legacy_events`
where event_type = 'JOBS'
group by all

-- model job_events
-- config {"enabled": true, "engine": "ReplacingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, job_id, event_time, dedup_key)", "partition_by": "toYYYYMM(event_time)"}
select
    cast('' as String) as event_id,
    cast(0 as DateTime64(3, 'UTC')) as event_time,
    cast('' as LowCardinality(String)) as event_name,
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    cast('' as LowCardinality(String)) as status,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as scheduled_at,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as started_at,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as completed_at,
    cast('' as LowCardinality(String)) as kafka_topic,
    cast(null as Nullable(UInt64)) as kafka_partition,
    cast(null as Nullable(UInt64)) as kafka_offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
    now64(3, 'UTC') as ingested_at,
    toFixedString('', 16) as dedup_key
where 0

-- model job_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_events`


with
accepted as (
    select *, _topic, _partition, _offset, _timestamp_ms, _error, _raw_message
    from `analytics_compile`.`jobs_queue`
    where _error = ''
      and (event_id IS NOT NULL AND event_id != '')
      and (event_time IS NOT NULL)
      and (event_type = 'job')
      and (event_name IS NOT NULL AND event_name != '')
      and (event_name IN ('created', 'started', 'completed', 'failed', 'cancelled'))
      and (user_id IS NOT NULL AND user_id != '')
      and (workflow_id IS NOT NULL AND workflow_id != '')
      and (job_id IS NOT NULL AND job_id != '')
      and (event_name NOT IN ('completed', 'failed') OR (started_at IS NOT NULL AND completed_at IS NOT NULL AND completed_at >= started_at))
),

incoming as (
    select
        assumeNotNull(event_id) as event_id,
        assumeNotNull(event_time) as event_time,
        assumeNotNull(event_name) as event_name,
        assumeNotNull(user_id) as user_id,
        assumeNotNull(workflow_id) as workflow_id,
        assumeNotNull(job_id) as job_id,
        ifNull(status, '') as status,
        scheduled_at,
        started_at,
        completed_at,
        ifNull(cast(_topic as Nullable(String)), 'jobs') as kafka_topic,
    cast(_partition as Nullable(UInt64)) as kafka_partition,
    cast(_offset as Nullable(UInt64)) as kafka_offset,
    cast(_timestamp_ms as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
        now64(3, 'UTC') as ingested_at,
        sipHash128('jobs', event_id) as dedup_key
    from accepted
    limit 1 by dedup_key
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('jobs', event_id) from `analytics_compile`.`jobs_queue`)
  )

-- model job_log_lines
-- config {"enabled": true, "engine": "ReplacingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, job_id, is_line, assumeNotNull(sequence), event_time, dedup_key)", "partition_by": "toYYYYMMDD(event_time)", "settings": {"ttl_only_drop_parts": 1}}
-- post-hooks ["{{ apply_log_retention(this) }}", "{{ add_job_log_line_indexes(this) }}"]
select
    cast('' as String) as event_id,
    cast(0 as DateTime64(3, 'UTC')) as event_time,
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    cast(1 as UInt64) as count,
    cast('' as LowCardinality(String)) as stream,
    cast(null as Nullable(UInt64)) as sequence,
    cast('' as String) as message,
    cast(false as Bool) as is_line,
    cast('' as LowCardinality(String)) as kafka_topic,
    cast(null as Nullable(UInt64)) as kafka_partition,
    cast(null as Nullable(UInt64)) as kafka_offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
    now64(3, 'UTC') as ingested_at,
    toFixedString('', 16) as dedup_key
where 0

-- model job_log_lines_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_log_lines`


with
accepted as (
    select *, _topic, _partition, _offset, _timestamp_ms, _error, _raw_message
    from `analytics_compile`.`job_logs_queue`
    where _error = ''
      and (event_id IS NOT NULL AND event_id != '')
      and (event_time IS NOT NULL)
      and (event_type = 'job_log')
      and (event_name IS NOT NULL AND event_name != '')
      and (event_name IN ('created'))
      and (user_id IS NOT NULL AND user_id != '')
      and (workflow_id IS NOT NULL AND workflow_id != '')
      and (job_id IS NOT NULL AND job_id != '')
      and (count IS NULL OR count >= 1)
),

-- An event is a line when it carries `message` (an empty one is an empty line); before the
-- message is made non-null below, where ClickHouse would resolve `message` to that alias.
with_line_flag as (
    select
        *,
        message is not null as is_line
    from accepted
),

incoming as (
    select
        assumeNotNull(event_id) as event_id,
        assumeNotNull(event_time) as event_time,
        assumeNotNull(user_id) as user_id,
        assumeNotNull(workflow_id) as workflow_id,
        assumeNotNull(job_id) as job_id,
        toUInt64(ifNull(count, 1)) as count,
        ifNull(stream, '') as stream,
        sequence,
        ifNull(message, '') as message,
        is_line,
        ifNull(cast(_topic as Nullable(String)), 'job_logs') as kafka_topic,
    cast(_partition as Nullable(UInt64)) as kafka_partition,
    cast(_offset as Nullable(UInt64)) as kafka_offset,
    cast(_timestamp_ms as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
        now64(3, 'UTC') as ingested_at,
        sipHash128('job_logs', event_id) as dedup_key
    from with_line_flag
    limit 1 by dedup_key
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('job_logs', event_id) from `analytics_compile`.`job_logs_queue`)
  )

-- model job_log_totals
-- config {"enabled": true, "engine": "AggregatingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, job_id)", "settings": {"index_granularity": 1024}}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    cast(0 as SimpleAggregateFunction(sum, UInt64)) as lines,
    cast(0 as SimpleAggregateFunction(sum, UInt64)) as entries,
    cast(null as SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))) as first_event_at,
    cast(null as SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))) as first_line_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as last_line_at
where 0

-- model job_log_totals_from_job_log_lines_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_log_totals`


select
    user_id,
    workflow_id,
    job_id,
    toUInt64(countIf(is_line)) as lines,
    toUInt64(sum(count)) as entries,
    min(event_time) as first_event_at,
    minIfOrNull(event_time, is_line) as first_line_at,
    maxIfOrNull(event_time, is_line) as last_line_at
from `analytics_compile`.`job_log_lines`
group by user_id, workflow_id, job_id

-- model job_logs_queue
-- config {"enabled": true, "engine": "Kafka()", "materialized": "incremental", "settings": {"date_time_input_format": "best_effort", "input_format_json_read_objects_as_strings": 1, "kafka_broker_list": "kafka-1:9092,kafka-2:9092", "kafka_flush_interval_ms": 250, "kafka_format": "JSONEachRow", "kafka_group_name": "analytics_job_logs", "kafka_handle_error_mode": "stream", "kafka_max_block_size": 65536, "kafka_num_consumers": 1, "kafka_topic_list": "job_logs"}}
select
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as job_id,
    cast(null as Nullable(Int64)) as count,
    cast(null as Nullable(String)) as stream,
    cast(null as Nullable(UInt64)) as sequence,
    cast(null as Nullable(String)) as message
    
where 0

-- model job_states
-- config {"enabled": true, "materialized": "view"}
select
    user_id,
    workflow_id,
    job_id,
    argMaxMerge(last_event) as state,
    argMaxMerge(last_status) as status,
    min(first_event_time) as first_event_time,
    max(last_event_time) as last_event_time,
    max(scheduled_at) as scheduled_at,
    max(started_at) as started_at,
    max(completed_at) as completed_at,
    sum(events) as events
from `analytics_compile`.`jobs_current`
group by user_id, workflow_id, job_id

-- model jobs_current
-- config {"enabled": true, "engine": "AggregatingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, job_id)"}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    argMaxState(cast('' as LowCardinality(String)), tuple(cast(0 as DateTime64(3, 'UTC')), toUInt8(0))) as last_event,
    argMaxState(cast('' as LowCardinality(String)), tuple(cast(0 as DateTime64(3, 'UTC')), toUInt8(0))) as last_status,
    cast(null as SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))) as first_event_time,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as last_event_time,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as scheduled_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as started_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as completed_at,
    cast(0 as SimpleAggregateFunction(sum, UInt64)) as events
group by user_id, workflow_id, job_id
having 0

-- model jobs_current_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`jobs_current`


with staged as (
    select
        *,
        -- later lifecycle stages win when two events share a timestamp
        tuple(event_time, transform(event_name, ['created', 'started', 'completed', 'failed', 'cancelled'],
                                    [1, 2, 3, 3, 3], 0)) as position
    from `analytics_compile`.`job_events`
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

-- model jobs_first_seen
-- config {"enabled": true, "engine": "ReplacingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, job_id)"}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    cast(0 as DateTime64(3, 'UTC')) as first_event_time,
    toFixedString('', 16) as dedup_key
where 0

-- model jobs_first_seen_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`jobs_first_seen`


with incoming as (
    select
        user_id,
        workflow_id,
        job_id,
        min(event_time) as first_event_time,
        sipHash128('job', workflow_id, job_id) as dedup_key
    from `analytics_compile`.`job_events`
    group by user_id, workflow_id, job_id
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('job', workflow_id, job_id) from `analytics_compile`.`job_events`)
  )

-- model jobs_queue
-- config {"enabled": true, "engine": "Kafka()", "materialized": "incremental", "settings": {"date_time_input_format": "best_effort", "input_format_json_read_objects_as_strings": 1, "kafka_broker_list": "kafka-1:9092,kafka-2:9092", "kafka_flush_interval_ms": 250, "kafka_format": "JSONEachRow", "kafka_group_name": "analytics_jobs", "kafka_handle_error_mode": "stream", "kafka_max_block_size": 65536, "kafka_num_consumers": 1, "kafka_topic_list": "jobs"}}
select
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as job_id,
    cast(null as Nullable(String)) as status,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as scheduled_at,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as started_at,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as completed_at
    
where 0

-- model kafka_consumer_lag
-- config {"enabled": true, "engine": "ReplacingMergeTree(measured_at)", "materialized": "incremental", "order_by": "(consumer_group, topic, partition)"}
select
    cast('' as String) as consumer_group,
    cast('' as LowCardinality(String)) as topic,
    cast(0 as UInt32) as partition,
    cast(-1 as Int64) as committed_offset,
    cast(0 as Int64) as high_watermark,
    cast(0 as Int64) as lag,
    now64(3, 'UTC') as measured_at
where 0

-- model legacy_events
-- config {"enabled": true, "engine": "ReplacingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, received_at, dedup_key)", "partition_by": "toYYYYMM(received_at)"}
select
    cast('' as String) as event_key,
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as LowCardinality(String)) as event_type,
    cast('' as LowCardinality(String)) as kind,
    cast(0 as UInt64) as job_execution_seconds,
    cast(0 as Float64) as job_execution_duration,
    cast(0 as UInt64) as log_count,
    cast('' as String) as data,
    cast(0 as DateTime64(3, 'UTC')) as received_at,
    cast('' as LowCardinality(String)) as kafka_topic,
    cast(null as Nullable(UInt64)) as kafka_partition,
    cast(null as Nullable(UInt64)) as kafka_offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
    toFixedString('', 16) as dedup_key
where 0

-- model legacy_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`legacy_events`


with
accepted as (
    select *, _topic, _partition, _offset, _timestamp_ms, _error, _raw_message
    from `analytics_compile`.`analytics_queue`
    where _error = ''
      and (EventKey IS NOT NULL AND EventKey != '')
      and (UserID IS NOT NULL AND UserID != '')
      and (WorkflowID IS NOT NULL AND WorkflowID != '')
      and (EventType IN ('WORKFLOWS', 'JOBS', 'LOGS'))
      and (Data IS NULL OR JSONType(Data) = 'Object')
      and (EventType != 'JOBS' OR JSONType(ifNull(Data, '{}'), 'job_execution_duration') IN ('Int64', 'UInt64', 'Double'))
      and (EventType != 'LOGS' OR JSONType(ifNull(Data, '{}'), 'count') IN ('Int64', 'UInt64'))
),

incoming as (
    select
        assumeNotNull(EventKey) as event_key,
        assumeNotNull(UserID) as user_id,
        assumeNotNull(WorkflowID) as workflow_id,
        assumeNotNull(EventType) as event_type,
        JSONExtractString(ifNull(Data, '{}'), 'kind') as kind,
        -- each JOBS event is one job; its duration counts in whole seconds, like a native job's
        toUInt64(greatest(floor(JSONExtractFloat(ifNull(Data, '{}'), 'job_execution_duration')), 0)) as job_execution_seconds,
        JSONExtractFloat(ifNull(Data, '{}'), 'job_execution_duration') as job_execution_duration,
        toUInt64(greatest(JSONExtractInt(ifNull(Data, '{}'), 'count'), 0)) as log_count,
        ifNull(Data, '') as data,
        -- the legacy events carry no time of their own: Kafka's timestamp, else arrival
        coalesce(cast(_timestamp_ms as Nullable(DateTime64(3, 'UTC'))), now64(3, 'UTC')) as received_at,
        ifNull(cast(_topic as Nullable(String)), 'analytics') as kafka_topic,
    cast(_partition as Nullable(UInt64)) as kafka_partition,
    cast(_offset as Nullable(UInt64)) as kafka_offset,
    cast(_timestamp_ms as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
        sipHash128('analytics', event_key) as dedup_key
    from accepted
    limit 1 by dedup_key
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('analytics', EventKey) from `analytics_compile`.`analytics_queue`)
  )

-- model seen_keys
-- config {"enabled": true, "engine": "EmbeddedRocksDB()", "materialized": "incremental", "primary_key": "key"}
select toFixedString('', 16) as key
where 0

-- model seen_keys_from_job_completions_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`seen_keys`


select dedup_key as key
from `analytics_compile`.`job_completions`

-- model seen_keys_from_job_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`seen_keys`


select dedup_key as key
from `analytics_compile`.`job_events`

-- model seen_keys_from_job_log_lines_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`seen_keys`


select dedup_key as key
from `analytics_compile`.`job_log_lines`

-- model seen_keys_from_jobs_first_seen_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`seen_keys`


select dedup_key as key
from `analytics_compile`.`jobs_first_seen`

-- model seen_keys_from_legacy_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`seen_keys`


select dedup_key as key
from `analytics_compile`.`legacy_events`

-- model seen_keys_from_telemetry_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`seen_keys`


select dedup_key as key
from `analytics_compile`.`telemetry_events`

-- model seen_keys_from_workflow_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`seen_keys`


select dedup_key as key
from `analytics_compile`.`workflow_events`

-- model storage_log_retention
-- config {"enabled": true, "materialized": "view"}
select
    name as table,
    position(create_table_query, ' TTL ') = 0 as audit_mode,
    toUInt32OrNull(extract(create_table_query, ' TTL toDateTime\\(event_time\\) \\+ toIntervalHour\\((\\d+)\\)')) as log_retention_hours,
    extract(create_table_query, ' TTL (.+?)(?: SETTINGS |$)') as ttl
from system.tables
where database = 'analytics_compile' and name = 'job_log_lines'

-- model storage_tables
-- config {"enabled": true, "materialized": "view"}
with
parts as (
    select
        table,
        sum(rows) as rows,
        count() as parts,
        sum(bytes_on_disk) as bytes_on_disk,
        sum(data_compressed_bytes) as compressed_bytes,
        sum(data_uncompressed_bytes) as uncompressed_bytes
    from system.parts
    where database = 'analytics_compile' and active
    group by table
),

tables as (
    select
        name as table,
        engine,
        total_rows,
        total_bytes,
        extract(create_table_query, ' TTL (.+?)(?: SETTINGS |$)') as ttl
    from system.tables
    where database = 'analytics_compile' and (engine like '%MergeTree' or engine = 'EmbeddedRocksDB')
)

select
    tables.table as table,
    tables.engine as engine,
    toUInt64(if(parts.table != '', parts.rows, ifNull(tables.total_rows, 0))) as rows,
    toUInt64(ifNull(parts.parts, 0)) as parts,
    toUInt64(if(parts.table != '', parts.bytes_on_disk, ifNull(tables.total_bytes, 0))) as bytes_on_disk,
    toUInt64(ifNull(parts.compressed_bytes, 0)) as compressed_bytes,
    toUInt64(ifNull(parts.uncompressed_bytes, 0)) as uncompressed_bytes,
    if(compressed_bytes > 0, uncompressed_bytes / compressed_bytes, null) as compression_ratio,
    tables.ttl as ttl
from tables
left join parts on parts.table = tables.table
order by table
settings optimize_trivial_approximate_count_query = 1

-- model storage_topics
-- config {"enabled": true, "materialized": "view"}
with
raw as (
    select
        'workflows' as topic,
        'workflow_events' as raw_table,
        count() as events,
        min(event_time) as oldest,
        max(event_time) as newest
    from `analytics_compile`.`workflow_events`
    union all
    select
        'jobs' as topic,
        'job_events' as raw_table,
        count() as events,
        min(event_time) as oldest,
        max(event_time) as newest
    from `analytics_compile`.`job_events`
    union all
    select
        'job_logs' as topic,
        'job_log_lines' as raw_table,
        count() as events,
        min(event_time) as oldest,
        max(event_time) as newest
    from `analytics_compile`.`job_log_lines`
    union all
    select
        'analytics' as topic,
        'legacy_events' as raw_table,
        count() as events,
        min(received_at) as oldest,
        max(received_at) as newest
    from `analytics_compile`.`legacy_events`
    union all
    select
        'telemetry' as topic,
        'telemetry_events' as raw_table,
        count() as events,
        min(event_time) as oldest,
        max(event_time) as newest
    from `analytics_compile`.`telemetry_events`
),

dead as (
    select
        topic,
        count() as dead_letters,
        max(received_at) as last_dead_letter_at
    from `analytics_compile`.`dead_letters` final
    group by topic
)

select
    if(raw.topic != '', raw.topic, dead.topic) as topic,
    raw.raw_table as raw_table,
    toUInt64(raw.events) as events,
    if(raw.events > 0, raw.oldest, null) as oldest_event_time,
    if(raw.events > 0, raw.newest, null) as newest_event_time,
    toUInt64(ifNull(dead.dead_letters, 0)) as dead_letters,
    if(dead.dead_letters > 0, dead.last_dead_letter_at, null) as last_dead_letter_at
from raw
full outer join dead on dead.topic = concat('', raw.topic)
order by topic

-- model telemetry_events
-- config {"enabled": true, "engine": "ReplacingMergeTree()", "materialized": "incremental", "order_by": "(event_type, event_name, event_time, dedup_key)", "partition_by": "toYYYYMM(event_time)"}
select
    cast('' as String) as event_id,
    cast(0 as DateTime64(3, 'UTC')) as event_time,
    cast('' as LowCardinality(String)) as event_type,
    cast('' as LowCardinality(String)) as event_name,
    cast('' as String) as user_id,
    cast('' as LowCardinality(String)) as service_name,
    cast(null as Nullable(Float64)) as value,
    cast('{}' as JSON) as attributes,
    cast('' as LowCardinality(String)) as kafka_topic,
    cast(null as Nullable(UInt64)) as kafka_partition,
    cast(null as Nullable(UInt64)) as kafka_offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
    now64(3, 'UTC') as ingested_at,
    toFixedString('', 16) as dedup_key
where 0

-- model telemetry_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`telemetry_events`


with
accepted as (
    select *, _topic, _partition, _offset, _timestamp_ms, _error, _raw_message
    from `analytics_compile`.`telemetry_queue`
    where _error = ''
      and (isValidJSON(message) AND JSONType(message) = 'Object')
      and (JSONType(message, 'event_id') = 'String' AND JSONExtractString(message, 'event_id') != '')
      and (parseDateTime64BestEffortOrNull(JSONExtractString(message, 'event_time'), 3, 'UTC') IS NOT NULL)
      and (JSONType(message, 'event_type') = 'String' AND JSONExtractString(message, 'event_type') != '')
      and (JSONType(message, 'event_name') = 'String' AND JSONExtractString(message, 'event_name') != '')
),

incoming as (
    select
        JSONExtractString(message, 'event_id') as event_id,
        parseDateTime64BestEffort(JSONExtractString(message, 'event_time'), 3, 'UTC') as event_time,
        JSONExtractString(message, 'event_type') as event_type,
        JSONExtractString(message, 'event_name') as event_name,
        JSONExtractString(message, 'user_id') as user_id,
        JSONExtractString(message, 'service_name') as service_name,
        if(JSONType(message, 'value') in ('Int64', 'UInt64', 'Double'), JSONExtractFloat(message, 'value'), null) as value,
        cast(message as JSON) as attributes,
        ifNull(cast(_topic as Nullable(String)), 'telemetry') as kafka_topic,
    cast(_partition as Nullable(UInt64)) as kafka_partition,
    cast(_offset as Nullable(UInt64)) as kafka_offset,
    cast(_timestamp_ms as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
        now64(3, 'UTC') as ingested_at,
        sipHash128('telemetry', event_id) as dedup_key
    from accepted
    limit 1 by dedup_key
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('telemetry', JSONExtractString(message, 'event_id')) from `analytics_compile`.`telemetry_queue`)
  )

-- model telemetry_queue
-- config {"enabled": true, "engine": "Kafka()", "materialized": "incremental", "settings": {"date_time_input_format": "best_effort", "input_format_json_read_objects_as_strings": 1, "kafka_broker_list": "kafka-1:9092,kafka-2:9092", "kafka_flush_interval_ms": 250, "kafka_format": "JSONAsString", "kafka_group_name": "analytics_telemetry", "kafka_handle_error_mode": "stream", "kafka_max_block_size": 65536, "kafka_num_consumers": 1, "kafka_topic_list": "telemetry"}}
select
    cast('' as String) as message
    
where 0

-- model user_totals
-- config {"enabled": true, "materialized": "view"}
with workflows as (
    select
        user_id,
        workflow_id,
        sum(jobs) as jobs,
        sum(joblogs) as joblogs,
        sum(job_execution_seconds) as job_execution_seconds
    from `analytics_compile`.`workflow_totals`
    group by user_id, workflow_id
)

select
    user_id,
    count() as total_workflows,
    sum(jobs) as total_jobs,
    sum(joblogs) as total_joblogs,
    sum(job_execution_seconds) as total_job_execution_duration
from workflows
group by user_id

-- model workflow_daily
-- config {"enabled": true, "engine": "AggregatingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, day)", "partition_by": "toYYYYMMDD(day)", "settings": {"index_granularity": 1024}}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('1970-01-01' as Date) as day,
    cast('' as SimpleAggregateFunction(max, String)) as kind,
    
    cast(0 as SimpleAggregateFunction(sum, Int64)) as workflow_events,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs_completed,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs_failed,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs_cancelled,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as job_execution_seconds,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as joblogs
where 0

-- model workflow_daily_from_job_completions_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_daily`


select
    user_id,
    workflow_id,
    toDate(ended_at) as day,
    '' as kind,
    
    
    toInt64(0) as workflow_events,
    toInt64(0) as jobs,
    toInt64(countIf(outcome = 'completed')) as jobs_completed,
    toInt64(countIf(outcome = 'failed')) as jobs_failed,
    toInt64(countIf(outcome = 'cancelled')) as jobs_cancelled,
    toInt64(sumIf(duration_seconds, outcome in ('completed', 'failed'))) as job_execution_seconds,
    toInt64(0) as joblogs
from `analytics_compile`.`job_completions`
group by all

-- model workflow_daily_from_job_log_lines_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_daily`


select
    user_id,
    workflow_id,
    toDate(event_time) as day,
    '' as kind,
    
    
    toInt64(0) as workflow_events,
    toInt64(0) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(0) as job_execution_seconds,
    toInt64(sum(count)) as joblogs
from `analytics_compile`.`job_log_lines`
group by all

-- model workflow_daily_from_jobs_first_seen_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_daily`


select
    user_id,
    workflow_id,
    toDate(first_event_time) as day,
    '' as kind,
    
    
    toInt64(0) as workflow_events,
    toInt64(count()) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(0) as job_execution_seconds,
    toInt64(0) as joblogs
from `analytics_compile`.`jobs_first_seen`
group by all

-- model workflow_daily_from_legacy_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_daily`


select
    user_id,
    workflow_id,
    toDate(received_at) as day,
    maxIf(kind, event_type = 'WORKFLOWS') as kind,
    
    
    toInt64(0) as workflow_events,
    toInt64(countIf(event_type = 'JOBS')) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(sumIf(job_execution_seconds, event_type = 'JOBS')) as job_execution_seconds,
    toInt64(sumIf(log_count, event_type = 'LOGS')) as joblogs
from `analytics_compile`.`legacy_events`
group by all

-- model workflow_daily_from_workflow_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_daily`


select
    user_id,
    workflow_id,
    toDate(event_time) as day,
    max(kind) as kind,
    
    
    toInt64(count()) as workflow_events,
    toInt64(0) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(0) as job_execution_seconds,
    toInt64(0) as joblogs
from `analytics_compile`.`workflow_events`
group by all

-- model workflow_events
-- config {"enabled": true, "engine": "ReplacingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, event_time, dedup_key)", "partition_by": "toYYYYMM(event_time)"}
select
    cast('' as String) as event_id,
    cast(0 as DateTime64(3, 'UTC')) as event_time,
    cast('' as LowCardinality(String)) as event_name,
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as LowCardinality(String)) as kind,
    cast('' as LowCardinality(String)) as kafka_topic,
    cast(null as Nullable(UInt64)) as kafka_partition,
    cast(null as Nullable(UInt64)) as kafka_offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
    now64(3, 'UTC') as ingested_at,
    toFixedString('', 16) as dedup_key
where 0

-- model workflow_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_events`


with
accepted as (
    select *, _topic, _partition, _offset, _timestamp_ms, _error, _raw_message
    from `analytics_compile`.`workflows_queue`
    where _error = ''
      and (event_id IS NOT NULL AND event_id != '')
      and (event_time IS NOT NULL)
      and (event_type = 'workflow')
      and (event_name IS NOT NULL AND event_name != '')
      and (event_name IN ('created', 'updated', 'terminated', 'deleted'))
      and (user_id IS NOT NULL AND user_id != '')
      and (workflow_id IS NOT NULL AND workflow_id != '')
),

incoming as (
    select
        assumeNotNull(event_id) as event_id,
        assumeNotNull(event_time) as event_time,
        assumeNotNull(event_name) as event_name,
        assumeNotNull(user_id) as user_id,
        assumeNotNull(workflow_id) as workflow_id,
        ifNull(kind, '') as kind,
        ifNull(cast(_topic as Nullable(String)), 'workflows') as kafka_topic,
    cast(_partition as Nullable(UInt64)) as kafka_partition,
    cast(_offset as Nullable(UInt64)) as kafka_offset,
    cast(_timestamp_ms as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
        now64(3, 'UTC') as ingested_at,
        sipHash128('workflows', event_id) as dedup_key
    from accepted
    limit 1 by dedup_key
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('workflows', event_id) from `analytics_compile`.`workflows_queue`)
  )

-- model workflow_totals
-- config {"enabled": true, "engine": "AggregatingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id)", "settings": {"index_granularity": 1024}}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as SimpleAggregateFunction(max, String)) as kind,
    cast(null as SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))) as first_event_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as last_event_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as terminated_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as deleted_at,
    
    cast(0 as SimpleAggregateFunction(sum, Int64)) as workflow_events,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs_completed,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs_failed,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs_cancelled,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as job_execution_seconds,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as joblogs
where 0

-- model workflow_totals_from_job_completions_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_totals`


select
    user_id,
    workflow_id,
    '' as kind,
    
    minOrNull(ended_at) as first_event_at,
    maxOrNull(ended_at) as last_event_at,
    
    toInt64(0) as workflow_events,
    toInt64(0) as jobs,
    toInt64(countIf(outcome = 'completed')) as jobs_completed,
    toInt64(countIf(outcome = 'failed')) as jobs_failed,
    toInt64(countIf(outcome = 'cancelled')) as jobs_cancelled,
    toInt64(sumIf(duration_seconds, outcome in ('completed', 'failed'))) as job_execution_seconds,
    toInt64(0) as joblogs
from `analytics_compile`.`job_completions`
group by all

-- model workflow_totals_from_job_log_lines_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_totals`


select
    user_id,
    workflow_id,
    '' as kind,
    
    minOrNull(event_time) as first_event_at,
    maxOrNull(event_time) as last_event_at,
    
    toInt64(0) as workflow_events,
    toInt64(0) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(0) as job_execution_seconds,
    toInt64(sum(count)) as joblogs
from `analytics_compile`.`job_log_lines`
group by all

-- model workflow_totals_from_jobs_first_seen_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_totals`


select
    user_id,
    workflow_id,
    '' as kind,
    
    minOrNull(first_event_time) as first_event_at,
    maxOrNull(first_event_time) as last_event_at,
    
    toInt64(0) as workflow_events,
    toInt64(count()) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(0) as job_execution_seconds,
    toInt64(0) as joblogs
from `analytics_compile`.`jobs_first_seen`
group by all

-- model workflow_totals_from_legacy_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_totals`


select
    user_id,
    workflow_id,
    maxIf(kind, event_type = 'WORKFLOWS') as kind,
    
    minOrNull(received_at) as first_event_at,
    maxOrNull(received_at) as last_event_at,
    
    toInt64(0) as workflow_events,
    toInt64(countIf(event_type = 'JOBS')) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(sumIf(job_execution_seconds, event_type = 'JOBS')) as job_execution_seconds,
    toInt64(sumIf(log_count, event_type = 'LOGS')) as joblogs
from `analytics_compile`.`legacy_events`
group by all

-- model workflow_totals_from_workflow_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_totals`


select
    user_id,
    workflow_id,
    max(kind) as kind,
    
    minOrNull(event_time) as first_event_at,
    maxOrNull(event_time) as last_event_at,
    maxIfOrNull(event_time, event_name = 'terminated') as terminated_at,
    maxIfOrNull(event_time, event_name = 'deleted') as deleted_at,
    
    toInt64(count()) as workflow_events,
    toInt64(0) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(0) as job_execution_seconds,
    toInt64(0) as joblogs
from `analytics_compile`.`workflow_events`
group by all

-- model workflows_queue
-- config {"enabled": true, "engine": "Kafka()", "materialized": "incremental", "settings": {"date_time_input_format": "best_effort", "input_format_json_read_objects_as_strings": 1, "kafka_broker_list": "kafka-1:9092,kafka-2:9092", "kafka_flush_interval_ms": 250, "kafka_format": "JSONEachRow", "kafka_group_name": "analytics_workflows", "kafka_handle_error_mode": "stream", "kafka_max_block_size": 65536, "kafka_num_consumers": 1, "kafka_topic_list": "workflows"}}
select
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as kind
    
where 0

-- disabled job_completions_all

-- disabled job_duration_daily_all

-- disabled job_log_lines_all

-- disabled job_log_totals_all

-- disabled jobs_first_seen_all

-- disabled workflow_daily_all

-- disabled workflow_totals_all
