-- model analytics_checked
-- config {"enabled": true, "engine": "Null()", "materialized": "incremental"}
select
    
    cast(null as Nullable(String)) as EventKey,
    cast(null as Nullable(String)) as UserID,
    cast(null as Nullable(String)) as WorkflowID,
    cast(null as Nullable(String)) as EventType,
    cast(null as Nullable(JSON)) as Data,
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms,
    cast('' as String) as _error,
    cast(null as Nullable(String)) as _raw_message,
    cast('' as String) as _violation
where 0

-- model analytics_checked_from_analytics_queue_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`analytics_checked`

select *, multiIf(
    _error != '', _error,
    not ifNull((isValidUTF8(ifNull(EventKey, '')) AND isValidUTF8(ifNull(UserID, '')) AND isValidUTF8(ifNull(WorkflowID, '')) AND isValidUTF8(ifNull(EventType, ''))), 0), 'text_is_utf8: a field holds bytes that are not UTF-8',
    not ifNull((UserID IS NOT NULL AND UserID != ''), 0), 'UserID_is_required: UserID is missing or empty',
    not ifNull((WorkflowID IS NOT NULL AND WorkflowID != ''), 0), 'WorkflowID_is_required: WorkflowID is missing or empty',
    not ifNull((EventType IN ('WORKFLOWS', 'JOBS', 'LOGS')), 0), 'EventType_is_known: EventType is not one of WORKFLOWS, JOBS, LOGS',
    not ifNull((Data IS NOT NULL), 0), 'Data_is_an_object: Data is missing or not a JSON object',
    not ifNull((EventType != 'WORKFLOWS' OR (JSONType(toJSONString(Data), 'kind') = 'String' AND JSONExtractString(toJSONString(Data), 'kind') != '')), 0), 'WORKFLOWS_have_a_kind: a WORKFLOWS event needs a non-empty string Data.kind',
    not ifNull((EventType != 'JOBS' OR (JSONType(toJSONString(Data), 'job_execution_duration') IN ('Int64', 'UInt64', 'Double') AND JSONExtractFloat(toJSONString(Data), 'job_execution_duration') BETWEEN 0 AND 1000000000)), 0), 'JOBS_have_a_duration: a JOBS event needs Data.job_execution_duration, seconds from 0 to 1000000000',
    not ifNull((EventType != 'LOGS' OR (JSONType(toJSONString(Data), 'count') IN ('Int64', 'UInt64') AND JSONExtractFloat(toJSONString(Data), 'count') BETWEEN 1 AND 4294967295)), 0), 'LOGS_have_a_count: a LOGS event needs an integer Data.count from 1 to 4294967295',
    ''
  ) as _violation
from `analytics_compile`.`analytics_queue`

-- model analytics_events
-- config {"enabled": true, "engine": "ReplacingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, dedup_key)", "partition_by": "toYYYYMM(received_at)"}
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

-- model analytics_events_from_analytics_checked_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`analytics_events`


with
accepted as (
    select *
    from `analytics_compile`.`analytics_checked`
    where throwIf(NOT (_offset IS NOT NULL AND _raw_message IS NOT NULL) AND ((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != '') OR _violation != ''), (
      select concat('analytics event ', refusal.1, ' refused, ', refusal.2)
      from (
          select any((if(ifNull(EventKey, '') = '', 'without an EventKey', concat('with EventKey "', leftUTF8(ifNull(EventKey, ''), 128), '"')), if((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != ''),
              'no_kafka_columns: _topic, _partition, _offset, _timestamp_ms, _raw_message, _error are set by Kafka ingest, never by a sender',
              _violation))) as refusal
          from `analytics_compile`.`analytics_checked`
          where NOT (_offset IS NOT NULL AND _raw_message IS NOT NULL) AND ((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != '') OR _violation != '')
      )
  )) = 0
      and _violation = ''
),

incoming as (
    select
        ifNull(EventKey, '') as event_key,
        assumeNotNull(UserID) as user_id,
        assumeNotNull(WorkflowID) as workflow_id,
        assumeNotNull(EventType) as event_type,
        toJSONString(Data) as data,
        JSONExtractString(data, 'kind') as kind,
        -- each JOBS event is one job; its duration counts in whole seconds, like a native job's
        toUInt64(greatest(floor(JSONExtractFloat(data, 'job_execution_duration')), 0)) as job_execution_seconds,
        JSONExtractFloat(data, 'job_execution_duration') as job_execution_duration,
        toUInt64(greatest(JSONExtractInt(data, 'count'), 0)) as log_count,
        -- the scheduler's events carry no time of their own: Kafka's timestamp, else arrival
        coalesce(_timestamp_ms, now64(3, 'UTC')) as received_at,
        ifNull(_topic, 'analytics') as kafka_topic,
    _partition as kafka_partition,
    _offset as kafka_offset,
    _timestamp_ms as kafka_timestamp,
        multiIf(
    ifNull(EventKey, '') != '', sipHash128('analytics', EventKey),
    (_offset IS NOT NULL AND _raw_message IS NOT NULL), sipHash128('analytics_kafka_message', ifNull(_topic, ''), ifNull(_partition, 0), assumeNotNull(_offset), ifNull(toUnixTimestamp64Milli(_timestamp_ms), -1)),
    sipHash128('analytics_unkeyed', generateUUIDv4(_raw_message))) as dedup_key
    from accepted
    limit 1 by dedup_key
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select multiIf(
    ifNull(EventKey, '') != '', sipHash128('analytics', EventKey),
    (_offset IS NOT NULL AND _raw_message IS NOT NULL), sipHash128('analytics_kafka_message', ifNull(_topic, ''), ifNull(_partition, 0), assumeNotNull(_offset), ifNull(toUnixTimestamp64Milli(_timestamp_ms), -1)),
    sipHash128('analytics_unkeyed', generateUUIDv4(_raw_message))) from `analytics_compile`.`analytics_checked`)
  )

-- model analytics_messages
-- config {"enabled": true, "engine": "Kafka()", "materialized": "incremental", "settings": {"kafka_broker_list": "kafka-1:9092,kafka-2:9092", "kafka_flush_interval_ms": 250, "kafka_format": "RawBLOB", "kafka_group_name": "analytics_analytics", "kafka_max_block_size": 65536, "kafka_num_consumers": 1, "kafka_topic_list": "analytics"}}
select
    cast('' as String) as payload
where 0

-- model analytics_queue
-- config {"enabled": true, "engine": "Null()", "materialized": "incremental"}
select
    
    cast(null as Nullable(String)) as EventKey,
    cast(null as Nullable(String)) as UserID,
    cast(null as Nullable(String)) as WorkflowID,
    cast(null as Nullable(String)) as EventType,
    cast(null as Nullable(JSON)) as Data,
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms,
    cast('' as String) as _error,
    cast(null as Nullable(String)) as _raw_message
where 0

-- model analytics_queue_from_analytics_messages_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`analytics_queue`

with
    isValidUTF8(payload) as is_utf8,
    if(is_utf8, JSONExtractKeysAndValuesRaw(payload), []) as pairs,
    notEmpty(pairs) or (is_utf8 and isValidJSON(payload)) as is_json,
    if(notEmpty(pairs), 'Object', if(is_json, JSONType(payload), 'Null')) as json_type,
    mapFromArrays(pairs.1, pairs.2) as fields,
    JSONExtract(if(json_type = 'Object', payload, '{}'), 'Tuple(EventKey Nullable(String), UserID Nullable(String), WorkflowID Nullable(String), EventType Nullable(String))') as string_values,
    arrayMap((key, raw) -> multiIf(
        key NOT IN ('EventKey', 'UserID', 'WorkflowID', 'EventType'), '',
        left(raw, 1) NOT IN ('"', 'n', ''), key || ' is ' || transform(left(raw, 1), ['{', '[', 't', 'f', '"'], ['an object', 'an array', 'a boolean', 'a boolean', 'a string'], 'a number') || ', not a string',
        match(raw, '^"(-[0-9]{19,}|[0-9]{20,})"$'), '?',
        ''), pairs.1, pairs.2) as string_checks,
    if(NOT arrayExists(check -> check != '', string_checks), '', arrayFirst(error -> error != '', arrayMap(
        pair -> if(pair.3 = '?', if(NOT match(payload, concat('"', pair.1, '"[ \t\n\r]*:[ \t\n\r]*', pair.2)), pair.1 || ' is a number, not a string', ''), pair.3),
        arraySort(pair -> indexOf(['EventKey', 'UserID', 'WorkflowID', 'EventType'], pair.1),
                  arrayZip(pairs.1, pairs.2, string_checks))))) as string_error
select
    tupleElement(string_values, 'EventKey') as EventKey,
    tupleElement(string_values, 'UserID') as UserID,
    tupleElement(string_values, 'WorkflowID') as WorkflowID,
    tupleElement(string_values, 'EventType') as EventType,
    if(left(fields['Data'], 1) = '{', cast(if(left(fields['Data'], 1) = '{', fields['Data'], '{}') as JSON), null) as Data,
    _topic,
    _partition,
    _offset,
    _timestamp_ms,
    multiIf(
        length(payload) >= 5 AND startsWith(payload, char(0)),
            'the message begins with byte 0 and is not JSON: Confluent Schema Registry''s serializers frame a message so (byte 0, a 4-byte schema id, then the data); a message must be the event''s JSON alone',
        not is_utf8, 'the message is not valid UTF-8',
        payload = '', 'the message is empty',
        not is_json AND (position(payload, '\n') > 0 AND isValidJSON(substring(payload, 1, position(payload, '\n') - 1))),
            'the message is not one JSON value: its first line is a whole one and more follows (a message carries one event; events are not read line by line)',
        not is_json, 'the message is not valid JSON',
        json_type != 'Object', 'the message is a JSON ' || lower(json_type) || ', not an object',
        length(pairs) != length(arrayDistinct(pairs.1)), 'the message has a duplicate key',
        hasAny(pairs.1, ['_topic', '_partition', '_offset', '_timestamp_ms', '_raw_message', '_error']),
            arrayFirst(key -> has(['_topic', '_partition', '_offset', '_timestamp_ms', '_raw_message', '_error'], key), pairs.1) || ' is set by Kafka ingest, never by a sender',
        string_error != '', string_error,
        left(fields['Data'], 1) NOT IN ('{', 'n', ''), 'Data is ' || transform(left(fields['Data'], 1), ['{', '[', 't', 'f', '"'], ['an object', 'an array', 'a boolean', 'a boolean', 'a string'], 'a number') || ', not an object',
        '') as _error,
    payload as _raw_message
from `analytics_compile`.`analytics_messages`

-- model dead_letters
-- config {"enabled": true, "engine": "ReplacingMergeTree(first_arrival_version)", "materialized": "incremental", "order_by": "(topic, partition, offset, kafka_timestamp)", "settings": {"allow_nullable_key": 1}}
-- post-hooks ["{{ dead_letters_version_default(this) }}"]
select
    cast('' as LowCardinality(String)) as topic,
    cast(null as Nullable(UInt64)) as "partition",
    cast(null as Nullable(UInt64)) as offset,
    -- Kafka's timestamp of the message (a keyless scheduler event is known by it and its position)
    cast(null as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
    cast('' as String) as raw_message,
    cast('' as String) as error,
    now64(3, 'UTC') as received_at,
    -toUnixTimestamp64Milli(received_at) as first_arrival_version
where 0

-- model dead_letters_from_analytics_checked_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`dead_letters`

select
    assumeNotNull(_topic) as topic,
    _partition as "partition",
    _offset as offset,
    _timestamp_ms as kafka_timestamp,
    -- the message's own bytes; a row replayed without them stands in with its parsed fields
    ifNull(_raw_message, formatRowNoNewline('JSONEachRow', EventKey, UserID, WorkflowID, EventType, Data)) as raw_message,
    _violation as error,
    now64(3, 'UTC') as received_at
from `analytics_compile`.`analytics_checked`
where (_offset IS NOT NULL AND _raw_message IS NOT NULL) and _violation != ''

-- model dead_letters_from_job_logs_checked_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`dead_letters`

select
    assumeNotNull(_topic) as topic,
    _partition as "partition",
    _offset as offset,
    _timestamp_ms as kafka_timestamp,
    -- the message's own bytes; a row replayed without them stands in with its parsed fields
    ifNull(_raw_message, formatRowNoNewline('JSONEachRow', event_id, event_time, event_type, event_name, user_id, workflow_id, job_id, count, stream, sequence, message)) as raw_message,
    _violation as error,
    now64(3, 'UTC') as received_at
from `analytics_compile`.`job_logs_checked`
where (_offset IS NOT NULL AND _raw_message IS NOT NULL) and _violation != ''

-- model dead_letters_from_jobs_checked_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`dead_letters`

select
    assumeNotNull(_topic) as topic,
    _partition as "partition",
    _offset as offset,
    _timestamp_ms as kafka_timestamp,
    -- the message's own bytes; a row replayed without them stands in with its parsed fields
    ifNull(_raw_message, formatRowNoNewline('JSONEachRow', event_id, event_time, event_type, event_name, user_id, workflow_id, job_id, status, scheduled_at, started_at, completed_at)) as raw_message,
    _violation as error,
    now64(3, 'UTC') as received_at
from `analytics_compile`.`jobs_checked`
where (_offset IS NOT NULL AND _raw_message IS NOT NULL) and _violation != ''

-- model dead_letters_from_telemetry_checked_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`dead_letters`

select
    assumeNotNull(_topic) as topic,
    _partition as "partition",
    _offset as offset,
    _timestamp_ms as kafka_timestamp,
    -- the message's own bytes; a row replayed without them stands in with its parsed fields
    ifNull(_raw_message, formatRowNoNewline('JSONEachRow', message)) as raw_message,
    _violation as error,
    now64(3, 'UTC') as received_at
from `analytics_compile`.`telemetry_checked`
where (_offset IS NOT NULL AND _raw_message IS NOT NULL) and _violation != ''

-- model dead_letters_from_workflows_checked_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`dead_letters`

select
    assumeNotNull(_topic) as topic,
    _partition as "partition",
    _offset as offset,
    _timestamp_ms as kafka_timestamp,
    -- the message's own bytes; a row replayed without them stands in with its parsed fields
    ifNull(_raw_message, formatRowNoNewline('JSONEachRow', event_id, event_time, event_type, event_name, user_id, workflow_id, kind)) as raw_message,
    _violation as error,
    now64(3, 'UTC') as received_at
from `analytics_compile`.`workflows_checked`
where (_offset IS NOT NULL AND _raw_message IS NOT NULL) and _violation != ''

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

-- model job_completions_from_job_events_mv
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
        if(event_name = 'cancelled' OR started_at IS NULL, 0,
           toUInt64(intDiv(dateDiff('millisecond', started_at, completed_at), 1000))) as duration_seconds,
        if(event_name = 'cancelled' OR started_at IS NULL, 0, dateDiff('millisecond', started_at, completed_at) / 1000)
            as duration,
        sipHash128('user_job_end', user_id, workflow_id, job_id) as dedup_key
    from `analytics_compile`.`job_events`
    where event_name in ('completed', 'failed', 'cancelled')
    order by event_time
    limit 1 by dedup_key
)
select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('user_job_end', user_id, workflow_id, job_id) from `analytics_compile`.`job_events` where event_name in ('completed', 'failed', 'cancelled'))
  )

-- model job_current
-- config {"enabled": true, "engine": "AggregatingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, job_id)"}
-- post-hooks ["{{ fill_job_current_from_raw_history(this) }}"]
-- depends_on: `analytics_compile`.`job_events`


select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    argMaxState(cast('' as LowCardinality(String)), toInt64(0)) as last_event,
    argMaxState(cast('' as LowCardinality(String)), toInt64(0)) as last_status,
    cast(null as SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))) as first_event_time,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as last_event_time,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as scheduled_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as started_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as completed_at,
    cast(0 as SimpleAggregateFunction(sum, UInt64)) as events
group by user_id, workflow_id, job_id
having 0

-- model job_current_from_job_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_current`


select
    user_id,
    workflow_id,
    job_id,
    argMaxState(event_name, position) as last_event,
    argMaxState(status, if(status != '', position, toInt64(-9223372036854775808))) as last_status,
    min(event_time) as first_event_time,
    max(event_time) as last_event_time,
    max(scheduled_at) as scheduled_at,
    max(started_at) as started_at,
    max(completed_at) as completed_at,
    count() as events
from (select *, toUnixTimestamp64Milli(event_time) * 8 + transform(
      event_name, ['created', 'started', 'completed', 'failed', 'cancelled'], [1, 2, 3, 3, 3], 0) as position from `analytics_compile`.`job_events`)
group by user_id, workflow_id, job_id

-- model job_duration_daily
-- config {"enabled": true, "engine": "AggregatingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, day)", "partition_by": "toYYYYMM(day)", "settings": {"index_granularity": 1024}}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('1970-01-01' as Date) as day,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(cast(0 as Float64)) as duration_seconds_quantiles
group by user_id, workflow_id, day
having 0

-- model job_duration_daily_from_analytics_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_duration_daily`


select
    user_id,
    workflow_id,
    toDate(received_at) as day,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(job_execution_duration) as duration_seconds_quantiles
from `analytics_compile`.`analytics_events`
where event_type = 'JOBS'
group by all

-- model job_duration_daily_from_job_completions_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_duration_daily`


select
    user_id,
    workflow_id,
    toDate(ended_at) as day,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(duration) as duration_seconds_quantiles
from `analytics_compile`.`job_completions`
where outcome in ('completed', 'failed') and started_at is not null
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

-- model job_events_from_jobs_checked_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_events`


with
accepted as (
    select *
    from `analytics_compile`.`jobs_checked`
    where throwIf(NOT (_offset IS NOT NULL AND _raw_message IS NOT NULL) AND ((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != '') OR _violation != ''), (
      select concat('jobs event ', refusal.1, ' refused, ', refusal.2)
      from (
          select any((if(ifNull(event_id, '') = '', 'without an event_id', concat('"', leftUTF8(ifNull(event_id, ''), 128), '"')), if((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != ''),
              'no_kafka_columns: _topic, _partition, _offset, _timestamp_ms, _raw_message, _error are set by Kafka ingest, never by a sender',
              _violation))) as refusal
          from `analytics_compile`.`jobs_checked`
          where NOT (_offset IS NOT NULL AND _raw_message IS NOT NULL) AND ((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != '') OR _violation != '')
      )
  )) = 0
      and _violation = ''
),

incoming as (
    select
        assumeNotNull(event_id) as event_id,
        assumeNotNull(parseDateTime64BestEffortOrNull(event_time, 3, 'UTC')) as event_time,
        assumeNotNull(event_name) as event_name,
        assumeNotNull(user_id) as user_id,
        assumeNotNull(workflow_id) as workflow_id,
        assumeNotNull(job_id) as job_id,
        if(lower(assumeNotNull(status)) = 'canceled', 'cancelled', lower(assumeNotNull(status))) as status,
        parseDateTime64BestEffortOrNull(scheduled_at, 3, 'UTC') as scheduled_at,
        parseDateTime64BestEffortOrNull(started_at, 3, 'UTC') as started_at,
        parseDateTime64BestEffortOrNull(completed_at, 3, 'UTC') as completed_at,
        ifNull(_topic, 'jobs') as kafka_topic,
    _partition as kafka_partition,
    _offset as kafka_offset,
    _timestamp_ms as kafka_timestamp,
        now64(3, 'UTC') as ingested_at,
        sipHash128('jobs', event_id) as dedup_key
    from accepted
    limit 1 by dedup_key
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('jobs', event_id) from `analytics_compile`.`jobs_checked`)
  )

-- model job_first_seen
-- config {"enabled": true, "engine": "ReplacingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, job_id)"}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    cast(0 as DateTime64(3, 'UTC')) as first_event_time,
    toFixedString('', 16) as dedup_key
where 0

-- model job_first_seen_from_job_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_first_seen`


with incoming as (
    select
        user_id,
        workflow_id,
        job_id,
        min(event_time) as first_event_time,
        sipHash128('user_job', user_id, workflow_id, job_id) as dedup_key
    from `analytics_compile`.`job_events`
    group by user_id, workflow_id, job_id
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('user_job', user_id, workflow_id, job_id) from `analytics_compile`.`job_events`)
  )

-- model job_log_events
-- config {"enabled": true, "engine": "ReplacingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, job_id, is_line, assumeNotNull(sequence), event_time, dedup_key)", "partition_by": "toYYYYMMDD(event_time)", "settings": {"ttl_only_drop_parts": 1}}
-- post-hooks ["{{ apply_log_retention(this) }}", "{{ add_job_log_line_indexes(this) }}"]
-- depends_on: `analytics_compile`.`log_retention_history`


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

-- model job_log_events_from_job_logs_checked_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_log_events`


with
accepted as (
    select *
    from `analytics_compile`.`job_logs_checked`
    where throwIf(NOT (_offset IS NOT NULL AND _raw_message IS NOT NULL) AND ((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != '') OR _violation != ''), (
      select concat('job_logs event ', refusal.1, ' refused, ', refusal.2)
      from (
          select any((if(ifNull(event_id, '') = '', 'without an event_id', concat('"', leftUTF8(ifNull(event_id, ''), 128), '"')), if((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != ''),
              'no_kafka_columns: _topic, _partition, _offset, _timestamp_ms, _raw_message, _error are set by Kafka ingest, never by a sender',
              _violation))) as refusal
          from `analytics_compile`.`job_logs_checked`
          where NOT (_offset IS NOT NULL AND _raw_message IS NOT NULL) AND ((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != '') OR _violation != '')
      )
  )) = 0
      and _violation = ''
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
        assumeNotNull(parseDateTime64BestEffortOrNull(event_time, 3, 'UTC')) as event_time,
        assumeNotNull(user_id) as user_id,
        assumeNotNull(workflow_id) as workflow_id,
        assumeNotNull(job_id) as job_id,
        toUInt64(ifNull(coalesce(toFloat64(count.Int64), toFloat64(count.UInt64), count.Float64), 1)) as count,
        ifNull(stream, '') as stream,
        toUInt64(coalesce(toFloat64(sequence.Int64), toFloat64(sequence.UInt64), sequence.Float64)) as sequence,
        ifNull(message, '') as message,
        is_line,
        ifNull(_topic, 'job_logs') as kafka_topic,
    _partition as kafka_partition,
    _offset as kafka_offset,
    _timestamp_ms as kafka_timestamp,
        now64(3, 'UTC') as ingested_at,
        sipHash128('job_logs', event_id) as dedup_key
    from with_line_flag
    limit 1 by dedup_key
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('job_logs', event_id) from `analytics_compile`.`job_logs_checked`)
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

-- model job_log_totals_from_job_log_events_mv
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
from `analytics_compile`.`job_log_events`
group by user_id, workflow_id, job_id

-- model job_logs_checked
-- config {"enabled": true, "engine": "Null()", "materialized": "incremental"}
select
    
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(String)) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as job_id,
    cast(null as Dynamic) as count,
    cast(null as Nullable(String)) as stream,
    cast(null as Dynamic) as sequence,
    cast(null as Nullable(String)) as message,
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms,
    cast('' as String) as _error,
    cast(null as Nullable(String)) as _raw_message,
    cast('' as String) as _violation
where 0

-- model job_logs_checked_from_job_logs_queue_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_logs_checked`

select *, multiIf(
    _error != '', _error,
    not ifNull((isValidUTF8(ifNull(event_id, '')) AND isValidUTF8(ifNull(event_time, '')) AND isValidUTF8(ifNull(event_type, '')) AND isValidUTF8(ifNull(event_name, '')) AND isValidUTF8(ifNull(user_id, '')) AND isValidUTF8(ifNull(workflow_id, '')) AND isValidUTF8(ifNull(job_id, '')) AND isValidUTF8(ifNull(stream, '')) AND isValidUTF8(ifNull(message, ''))), 0), 'text_is_utf8: a field holds bytes that are not UTF-8',
    not ifNull((event_id IS NOT NULL AND event_id != ''), 0), 'event_id_is_required: event_id is missing or empty',
    not ifNull((if(match(event_time, '^(1969|19[7-9][0-9]|20[0-9]{2}|21[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$')
     AND (NOT (startsWith(event_time, '1969-') OR startsWith(event_time, '1970-01-01') OR startsWith(event_time, '2149-'))
          OR parseDateTime64BestEffortOrNull(event_time, 3, 'UTC') BETWEEN toDateTime64('1970-01-01 00:00:00', 3, 'UTC')
                              AND toDateTime64('2149-06-06 23:59:59.999', 3, 'UTC')),
     parseDateTime64BestEffortOrNull(event_time, 3, 'UTC'), null) IS NOT NULL), 0), 'event_time_is_iso8601: event_time is missing or not an ISO 8601 time from 1970-01-01 to 2149-06-06 (UTC) with Z or an offset',
    not ifNull((event_type = 'job_log'), 0), 'event_type_is_job_log: event_type is not \'job_log\'',
    not ifNull((event_name IS NOT NULL AND event_name != ''), 0), 'event_name_is_required: event_name is missing or empty',
    not ifNull((event_name IN ('created')), 0), 'event_name_is_known: event_name is not one of created',
    not ifNull((user_id IS NOT NULL AND user_id != ''), 0), 'user_id_is_required: user_id is missing or empty',
    not ifNull((workflow_id IS NOT NULL AND workflow_id != ''), 0), 'workflow_id_is_required: workflow_id is missing or empty',
    not ifNull((job_id IS NOT NULL AND job_id != ''), 0), 'job_id_is_required: job_id is missing or empty',
    not ifNull(((count IS NULL OR (dynamicType(count) IN ('Int64', 'UInt64', 'Float64')
   AND coalesce(toFloat64(count.Int64), toFloat64(count.UInt64), count.Float64) = floor(coalesce(toFloat64(count.Int64), toFloat64(count.UInt64), count.Float64))
   AND coalesce(toFloat64(count.Int64), toFloat64(count.UInt64), count.Float64) BETWEEN 1 AND 4294967295))), 0), 'count_is_a_positive_integer: count must be an integer from 1 to 4294967295',
    not ifNull((stream IS NULL OR stream != ''), 0), 'stream_is_not_empty: stream is empty',
    not ifNull(((sequence IS NULL OR (dynamicType(sequence) IN ('Int64', 'UInt64', 'Float64')
   AND coalesce(toFloat64(sequence.Int64), toFloat64(sequence.UInt64), sequence.Float64) = floor(coalesce(toFloat64(sequence.Int64), toFloat64(sequence.UInt64), sequence.Float64))
   AND coalesce(toFloat64(sequence.Int64), toFloat64(sequence.UInt64), sequence.Float64) BETWEEN 0 AND 9007199254740991))), 0), 'sequence_is_a_non_negative_integer: sequence must be an integer from 0 to 9007199254740991',
    ''
  ) as _violation
from `analytics_compile`.`job_logs_queue`

-- model job_logs_messages
-- config {"enabled": true, "engine": "Kafka()", "materialized": "incremental", "settings": {"kafka_broker_list": "kafka-1:9092,kafka-2:9092", "kafka_flush_interval_ms": 250, "kafka_format": "RawBLOB", "kafka_group_name": "analytics_job_logs", "kafka_max_block_size": 65536, "kafka_num_consumers": 1, "kafka_topic_list": "job_logs"}}
select
    cast('' as String) as payload
where 0

-- model job_logs_queue
-- config {"enabled": true, "engine": "Null()", "materialized": "incremental"}
select
    
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(String)) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as job_id,
    cast(null as Dynamic) as count,
    cast(null as Nullable(String)) as stream,
    cast(null as Dynamic) as sequence,
    cast(null as Nullable(String)) as message,
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms,
    cast('' as String) as _error,
    cast(null as Nullable(String)) as _raw_message
where 0

-- model job_logs_queue_from_job_logs_messages_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`job_logs_queue`

with
    isValidUTF8(payload) as is_utf8,
    if(is_utf8, JSONExtractKeysAndValuesRaw(payload), []) as pairs,
    notEmpty(pairs) or (is_utf8 and isValidJSON(payload)) as is_json,
    if(notEmpty(pairs), 'Object', if(is_json, JSONType(payload), 'Null')) as json_type,
    mapFromArrays(pairs.1, pairs.2) as fields,
    JSONExtract(if(json_type = 'Object', payload, '{}'), 'Tuple(event_id Nullable(String), event_time Nullable(String), event_type Nullable(String), event_name Nullable(String), user_id Nullable(String), workflow_id Nullable(String), job_id Nullable(String), stream Nullable(String), message Nullable(String))') as string_values,
    arrayMap((key, raw) -> multiIf(
        key NOT IN ('event_id', 'event_time', 'event_type', 'event_name', 'user_id', 'workflow_id', 'job_id', 'stream', 'message'), '',
        left(raw, 1) NOT IN ('"', 'n', ''), key || ' is ' || transform(left(raw, 1), ['{', '[', 't', 'f', '"'], ['an object', 'an array', 'a boolean', 'a boolean', 'a string'], 'a number') || ', not a string',
        match(raw, '^"(-[0-9]{19,}|[0-9]{20,})"$'), '?',
        ''), pairs.1, pairs.2) as string_checks,
    if(NOT arrayExists(check -> check != '', string_checks), '', arrayFirst(error -> error != '', arrayMap(
        pair -> if(pair.3 = '?', if(NOT match(payload, concat('"', pair.1, '"[ \t\n\r]*:[ \t\n\r]*', pair.2)), pair.1 || ' is a number, not a string', ''), pair.3),
        arraySort(pair -> indexOf(['event_id', 'event_time', 'event_type', 'event_name', 'user_id', 'workflow_id', 'job_id', 'stream', 'message'], pair.1),
                  arrayZip(pairs.1, pairs.2, string_checks))))) as string_error
select
    tupleElement(string_values, 'event_id') as event_id,
    tupleElement(string_values, 'event_time') as event_time,
    tupleElement(string_values, 'event_type') as event_type,
    tupleElement(string_values, 'event_name') as event_name,
    tupleElement(string_values, 'user_id') as user_id,
    tupleElement(string_values, 'workflow_id') as workflow_id,
    tupleElement(string_values, 'job_id') as job_id,
    multiIf(
        fields['count'] IN ('', 'null'), null,
        JSONType(fields['count']) = 'Int64', cast(JSONExtractInt(fields['count']) as Dynamic),
        JSONType(fields['count']) = 'UInt64', cast(JSONExtractUInt(fields['count']) as Dynamic),
        JSONType(fields['count']) = 'Double', cast(JSONExtractFloat(fields['count']) as Dynamic),
        (match(fields['count'], '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(payload, concat('"', 'count', '"[ \t\n\r]*:[ \t\n\r]*', fields['count']))), cast(toFloat64OrNull(trim(BOTH '"' FROM fields['count'])) as Dynamic),
        cast(fields['count'] as Dynamic)) as count,
    tupleElement(string_values, 'stream') as stream,
    multiIf(
        fields['sequence'] IN ('', 'null'), null,
        JSONType(fields['sequence']) = 'Int64', cast(JSONExtractInt(fields['sequence']) as Dynamic),
        JSONType(fields['sequence']) = 'UInt64', cast(JSONExtractUInt(fields['sequence']) as Dynamic),
        JSONType(fields['sequence']) = 'Double', cast(JSONExtractFloat(fields['sequence']) as Dynamic),
        (match(fields['sequence'], '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(payload, concat('"', 'sequence', '"[ \t\n\r]*:[ \t\n\r]*', fields['sequence']))), cast(toFloat64OrNull(trim(BOTH '"' FROM fields['sequence'])) as Dynamic),
        cast(fields['sequence'] as Dynamic)) as sequence,
    tupleElement(string_values, 'message') as message,
    _topic,
    _partition,
    _offset,
    _timestamp_ms,
    multiIf(
        length(payload) >= 5 AND startsWith(payload, char(0)),
            'the message begins with byte 0 and is not JSON: Confluent Schema Registry''s serializers frame a message so (byte 0, a 4-byte schema id, then the data); a message must be the event''s JSON alone',
        not is_utf8, 'the message is not valid UTF-8',
        payload = '', 'the message is empty',
        not is_json AND (position(payload, '\n') > 0 AND isValidJSON(substring(payload, 1, position(payload, '\n') - 1))),
            'the message is not one JSON value: its first line is a whole one and more follows (a message carries one event; events are not read line by line)',
        not is_json, 'the message is not valid JSON',
        json_type != 'Object', 'the message is a JSON ' || lower(json_type) || ', not an object',
        length(pairs) != length(arrayDistinct(pairs.1)), 'the message has a duplicate key',
        hasAny(pairs.1, ['_topic', '_partition', '_offset', '_timestamp_ms', '_raw_message', '_error']),
            arrayFirst(key -> has(['_topic', '_partition', '_offset', '_timestamp_ms', '_raw_message', '_error'], key), pairs.1) || ' is set by Kafka ingest, never by a sender',
        string_error != '', string_error,
        '') as _error,
    payload as _raw_message
from `analytics_compile`.`job_logs_messages`

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
from `analytics_compile`.`job_current`
group by user_id, workflow_id, job_id

-- model jobs_checked
-- config {"enabled": true, "engine": "Null()", "materialized": "incremental"}
select
    
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(String)) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as job_id,
    cast(null as Nullable(String)) as status,
    cast(null as Nullable(String)) as scheduled_at,
    cast(null as Nullable(String)) as started_at,
    cast(null as Nullable(String)) as completed_at,
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms,
    cast('' as String) as _error,
    cast(null as Nullable(String)) as _raw_message,
    cast('' as String) as _violation
where 0

-- model jobs_checked_from_jobs_queue_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`jobs_checked`

select *, multiIf(
    _error != '', _error,
    not ifNull((isValidUTF8(ifNull(event_id, '')) AND isValidUTF8(ifNull(event_time, '')) AND isValidUTF8(ifNull(event_type, '')) AND isValidUTF8(ifNull(event_name, '')) AND isValidUTF8(ifNull(user_id, '')) AND isValidUTF8(ifNull(workflow_id, '')) AND isValidUTF8(ifNull(job_id, '')) AND isValidUTF8(ifNull(status, '')) AND isValidUTF8(ifNull(scheduled_at, '')) AND isValidUTF8(ifNull(started_at, '')) AND isValidUTF8(ifNull(completed_at, ''))), 0), 'text_is_utf8: a field holds bytes that are not UTF-8',
    not ifNull((event_id IS NOT NULL AND event_id != ''), 0), 'event_id_is_required: event_id is missing or empty',
    not ifNull((if(match(event_time, '^(1969|19[7-9][0-9]|20[0-9]{2}|21[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$')
     AND (NOT (startsWith(event_time, '1969-') OR startsWith(event_time, '1970-01-01') OR startsWith(event_time, '2149-'))
          OR parseDateTime64BestEffortOrNull(event_time, 3, 'UTC') BETWEEN toDateTime64('1970-01-01 00:00:00', 3, 'UTC')
                              AND toDateTime64('2149-06-06 23:59:59.999', 3, 'UTC')),
     parseDateTime64BestEffortOrNull(event_time, 3, 'UTC'), null) IS NOT NULL), 0), 'event_time_is_iso8601: event_time is missing or not an ISO 8601 time from 1970-01-01 to 2149-06-06 (UTC) with Z or an offset',
    not ifNull((event_type = 'job'), 0), 'event_type_is_job: event_type is not \'job\'',
    not ifNull((event_name IS NOT NULL AND event_name != ''), 0), 'event_name_is_required: event_name is missing or empty',
    not ifNull((event_name IN ('created', 'started', 'completed', 'failed', 'cancelled')), 0), 'event_name_is_known: event_name is not one of created, started, completed, failed, cancelled',
    not ifNull((user_id IS NOT NULL AND user_id != ''), 0), 'user_id_is_required: user_id is missing or empty',
    not ifNull((workflow_id IS NOT NULL AND workflow_id != ''), 0), 'workflow_id_is_required: workflow_id is missing or empty',
    not ifNull((job_id IS NOT NULL AND job_id != ''), 0), 'job_id_is_required: job_id is missing or empty',
    not ifNull((status IN ('pending', 'PENDING', 'queued', 'QUEUED', 'running', 'RUNNING', 'completed', 'COMPLETED', 'failed', 'FAILED', 'cancelled', 'CANCELLED', 'canceled', 'CANCELED')), 0), 'status_is_known: status is not one of pending, queued, running, completed, failed, cancelled (lower case, or upper case; CANCELED too)',
    not ifNull(((event_name = 'created' AND if(lower(status) = 'canceled', 'cancelled', lower(status)) IN ('pending', 'queued')) OR (event_name = 'started' AND if(lower(status) = 'canceled', 'cancelled', lower(status)) = 'running') OR (event_name IN ('completed', 'failed', 'cancelled') AND if(lower(status) = 'canceled', 'cancelled', lower(status)) = event_name)), 0), 'status_matches_event_name: status does not match event_name (created: pending or queued; started: running; the others their own name)',
    not ifNull((scheduled_at IS NULL OR if(match(scheduled_at, '^(1969|19[7-9][0-9]|20[0-9]{2}|21[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$')
     AND (NOT (startsWith(scheduled_at, '1969-') OR startsWith(scheduled_at, '1970-01-01') OR startsWith(scheduled_at, '2149-'))
          OR parseDateTime64BestEffortOrNull(scheduled_at, 3, 'UTC') BETWEEN toDateTime64('1970-01-01 00:00:00', 3, 'UTC')
                              AND toDateTime64('2149-06-06 23:59:59.999', 3, 'UTC')),
     parseDateTime64BestEffortOrNull(scheduled_at, 3, 'UTC'), null) IS NOT NULL), 0), 'scheduled_at_is_iso8601: scheduled_at is not an ISO 8601 time from 1970-01-01 to 2149-06-06 (UTC) with Z or an offset',
    not ifNull((started_at IS NULL OR if(match(started_at, '^(1969|19[7-9][0-9]|20[0-9]{2}|21[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$')
     AND (NOT (startsWith(started_at, '1969-') OR startsWith(started_at, '1970-01-01') OR startsWith(started_at, '2149-'))
          OR parseDateTime64BestEffortOrNull(started_at, 3, 'UTC') BETWEEN toDateTime64('1970-01-01 00:00:00', 3, 'UTC')
                              AND toDateTime64('2149-06-06 23:59:59.999', 3, 'UTC')),
     parseDateTime64BestEffortOrNull(started_at, 3, 'UTC'), null) IS NOT NULL), 0), 'started_at_is_iso8601: started_at is not an ISO 8601 time from 1970-01-01 to 2149-06-06 (UTC) with Z or an offset',
    not ifNull((completed_at IS NULL OR if(match(completed_at, '^(1969|19[7-9][0-9]|20[0-9]{2}|21[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$')
     AND (NOT (startsWith(completed_at, '1969-') OR startsWith(completed_at, '1970-01-01') OR startsWith(completed_at, '2149-'))
          OR parseDateTime64BestEffortOrNull(completed_at, 3, 'UTC') BETWEEN toDateTime64('1970-01-01 00:00:00', 3, 'UTC')
                              AND toDateTime64('2149-06-06 23:59:59.999', 3, 'UTC')),
     parseDateTime64BestEffortOrNull(completed_at, 3, 'UTC'), null) IS NOT NULL), 0), 'completed_at_is_iso8601: completed_at is not an ISO 8601 time from 1970-01-01 to 2149-06-06 (UTC) with Z or an offset',
    not ifNull((event_name NOT IN ('started', 'completed') OR started_at IS NOT NULL), 0), 'started_job_has_started_at: a started or completed job event needs started_at',
    not ifNull((event_name NOT IN ('completed', 'failed') OR (completed_at IS NOT NULL AND (started_at IS NULL OR if(match(completed_at, '^(1969|19[7-9][0-9]|20[0-9]{2}|21[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$')
     AND (NOT (startsWith(completed_at, '1969-') OR startsWith(completed_at, '1970-01-01') OR startsWith(completed_at, '2149-'))
          OR parseDateTime64BestEffortOrNull(completed_at, 3, 'UTC') BETWEEN toDateTime64('1970-01-01 00:00:00', 3, 'UTC')
                              AND toDateTime64('2149-06-06 23:59:59.999', 3, 'UTC')),
     parseDateTime64BestEffortOrNull(completed_at, 3, 'UTC'), null) >= if(match(started_at, '^(1969|19[7-9][0-9]|20[0-9]{2}|21[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$')
     AND (NOT (startsWith(started_at, '1969-') OR startsWith(started_at, '1970-01-01') OR startsWith(started_at, '2149-'))
          OR parseDateTime64BestEffortOrNull(started_at, 3, 'UTC') BETWEEN toDateTime64('1970-01-01 00:00:00', 3, 'UTC')
                              AND toDateTime64('2149-06-06 23:59:59.999', 3, 'UTC')),
     parseDateTime64BestEffortOrNull(started_at, 3, 'UTC'), null)))), 0), 'finished_job_has_its_times: a completed or failed job event needs completed_at, not before started_at',
    ''
  ) as _violation
from `analytics_compile`.`jobs_queue`

-- model jobs_messages
-- config {"enabled": true, "engine": "Kafka()", "materialized": "incremental", "settings": {"kafka_broker_list": "kafka-1:9092,kafka-2:9092", "kafka_flush_interval_ms": 250, "kafka_format": "RawBLOB", "kafka_group_name": "analytics_jobs", "kafka_max_block_size": 65536, "kafka_num_consumers": 1, "kafka_topic_list": "jobs"}}
select
    cast('' as String) as payload
where 0

-- model jobs_queue
-- config {"enabled": true, "engine": "Null()", "materialized": "incremental"}
select
    
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(String)) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as job_id,
    cast(null as Nullable(String)) as status,
    cast(null as Nullable(String)) as scheduled_at,
    cast(null as Nullable(String)) as started_at,
    cast(null as Nullable(String)) as completed_at,
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms,
    cast('' as String) as _error,
    cast(null as Nullable(String)) as _raw_message
where 0

-- model jobs_queue_from_jobs_messages_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`jobs_queue`

with
    isValidUTF8(payload) as is_utf8,
    if(is_utf8, JSONExtractKeysAndValuesRaw(payload), []) as pairs,
    notEmpty(pairs) or (is_utf8 and isValidJSON(payload)) as is_json,
    if(notEmpty(pairs), 'Object', if(is_json, JSONType(payload), 'Null')) as json_type,
    mapFromArrays(pairs.1, pairs.2) as fields,
    JSONExtract(if(json_type = 'Object', payload, '{}'), 'Tuple(event_id Nullable(String), event_time Nullable(String), event_type Nullable(String), event_name Nullable(String), user_id Nullable(String), workflow_id Nullable(String), job_id Nullable(String), status Nullable(String), scheduled_at Nullable(String), started_at Nullable(String), completed_at Nullable(String))') as string_values,
    arrayMap((key, raw) -> multiIf(
        key NOT IN ('event_id', 'event_time', 'event_type', 'event_name', 'user_id', 'workflow_id', 'job_id', 'status', 'scheduled_at', 'started_at', 'completed_at'), '',
        left(raw, 1) NOT IN ('"', 'n', ''), key || ' is ' || transform(left(raw, 1), ['{', '[', 't', 'f', '"'], ['an object', 'an array', 'a boolean', 'a boolean', 'a string'], 'a number') || ', not a string',
        match(raw, '^"(-[0-9]{19,}|[0-9]{20,})"$'), '?',
        ''), pairs.1, pairs.2) as string_checks,
    if(NOT arrayExists(check -> check != '', string_checks), '', arrayFirst(error -> error != '', arrayMap(
        pair -> if(pair.3 = '?', if(NOT match(payload, concat('"', pair.1, '"[ \t\n\r]*:[ \t\n\r]*', pair.2)), pair.1 || ' is a number, not a string', ''), pair.3),
        arraySort(pair -> indexOf(['event_id', 'event_time', 'event_type', 'event_name', 'user_id', 'workflow_id', 'job_id', 'status', 'scheduled_at', 'started_at', 'completed_at'], pair.1),
                  arrayZip(pairs.1, pairs.2, string_checks))))) as string_error
select
    tupleElement(string_values, 'event_id') as event_id,
    tupleElement(string_values, 'event_time') as event_time,
    tupleElement(string_values, 'event_type') as event_type,
    tupleElement(string_values, 'event_name') as event_name,
    tupleElement(string_values, 'user_id') as user_id,
    tupleElement(string_values, 'workflow_id') as workflow_id,
    tupleElement(string_values, 'job_id') as job_id,
    tupleElement(string_values, 'status') as status,
    tupleElement(string_values, 'scheduled_at') as scheduled_at,
    tupleElement(string_values, 'started_at') as started_at,
    tupleElement(string_values, 'completed_at') as completed_at,
    _topic,
    _partition,
    _offset,
    _timestamp_ms,
    multiIf(
        length(payload) >= 5 AND startsWith(payload, char(0)),
            'the message begins with byte 0 and is not JSON: Confluent Schema Registry''s serializers frame a message so (byte 0, a 4-byte schema id, then the data); a message must be the event''s JSON alone',
        not is_utf8, 'the message is not valid UTF-8',
        payload = '', 'the message is empty',
        not is_json AND (position(payload, '\n') > 0 AND isValidJSON(substring(payload, 1, position(payload, '\n') - 1))),
            'the message is not one JSON value: its first line is a whole one and more follows (a message carries one event; events are not read line by line)',
        not is_json, 'the message is not valid JSON',
        json_type != 'Object', 'the message is a JSON ' || lower(json_type) || ', not an object',
        length(pairs) != length(arrayDistinct(pairs.1)), 'the message has a duplicate key',
        hasAny(pairs.1, ['_topic', '_partition', '_offset', '_timestamp_ms', '_raw_message', '_error']),
            arrayFirst(key -> has(['_topic', '_partition', '_offset', '_timestamp_ms', '_raw_message', '_error'], key), pairs.1) || ' is set by Kafka ingest, never by a sender',
        string_error != '', string_error,
        '') as _error,
    payload as _raw_message
from `analytics_compile`.`jobs_messages`

-- model kafka_consumer_lag
-- config {"enabled": true, "engine": "ReplacingMergeTree(measured_at)", "materialized": "incremental", "order_by": "(consumer_group, topic, partition)"}
select
    cast('' as String) as consumer_group,
    cast('' as LowCardinality(String)) as topic,
    cast(0 as UInt32) as "partition",
    cast(-1 as Int64) as committed_offset,
    cast(0 as Int64) as high_watermark,
    cast(0 as Int64) as lag,
    now64(3, 'UTC') as measured_at
where 0

-- model log_retention_history
-- config {"enabled": true, "engine": "MergeTree()", "materialized": "incremental", "order_by": "applied_at"}
select
    now64(3, 'UTC') as applied_at,
    cast(null as Nullable(UInt32)) as log_retention_hours
where 0

-- model schema_history
-- config {"enabled": true, "engine": "MergeTree()", "materialized": "incremental", "order_by": "migrated_at"}
select
    now64(3, 'UTC') as migrated_at,
    toUInt32(0) as generation,
    '' as invocation_id
where 0

-- model seen_keys
-- config {"enabled": true, "engine": "EmbeddedRocksDB()", "materialized": "incremental", "primary_key": "key"}
select toFixedString('', 16) as key
where 0

-- model seen_keys_from_analytics_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`seen_keys`


select dedup_key as key
from `analytics_compile`.`analytics_events`

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

-- model seen_keys_from_job_first_seen_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`seen_keys`


select dedup_key as key
from `analytics_compile`.`job_first_seen`

-- model seen_keys_from_job_log_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`seen_keys`


select dedup_key as key
from `analytics_compile`.`job_log_events`

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
    toUInt32OrNull(extract(create_table_query, ' TTL toDateTime\\((?:least\\()?event_time\\)? \\+ toIntervalHour\\((\\d+)\\)')) as log_retention_hours,
    extract(create_table_query, ' TTL (.+?)(?: SETTINGS |$)') as ttl,
    (
        select
            greatest(
                ifNull(max(periods.until - toIntervalHour(periods.log_retention_hours)), toDateTime64('1970-01-01 00:00:00', 3, 'UTC')), toDateTime64('1970-01-01 00:00:00', 3, 'UTC')
            )
        from (
            select
                log_retention_hours,
                leadInFrame(applied_at, 1, now64(3, 'UTC')) over (
                    order by applied_at rows between unbounded preceding and unbounded following
                ) as until
            from `analytics_compile`.`log_retention_history`
        ) as periods
        where periods.log_retention_hours is not null
    ) as lines_complete_since
from system.tables
where database = 'analytics_compile' and name = 'job_log_events'

-- model storage_tables
-- config {"enabled": true, "materialized": "view"}
with
parts as (
    select
        table,
        sum("rows") as "rows",
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
    toUInt64(if(parts.table != '', parts."rows", ifNull(tables.total_rows, 0))) as "rows",
    toUInt64(ifNull(parts.parts, 0)) as parts,
    toUInt64(if(parts.table != '', parts.bytes_on_disk, ifNull(tables.total_bytes, 0))) as bytes_on_disk,
    toUInt64(ifNull(parts.compressed_bytes, 0)) as compressed_bytes,
    toUInt64(ifNull(parts.uncompressed_bytes, 0)) as uncompressed_bytes,
    if(compressed_bytes > 0, uncompressed_bytes / compressed_bytes, null) as compression_ratio,
    tables.ttl as ttl
from tables
left join parts on tables.table = parts.table
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
            'job_log_events' as raw_table,
            count() as events,
            min(event_time) as oldest,
            max(event_time) as newest
        from `analytics_compile`.`job_log_events`
    union all
        select
            'analytics' as topic,
            'analytics_events' as raw_table,
            count() as events,
            min(received_at) as oldest,
            max(received_at) as newest
        from `analytics_compile`.`analytics_events`
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

-- model telemetry_checked
-- config {"enabled": true, "engine": "Null()", "materialized": "incremental"}
select
    
    cast('' as String) as message,
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms,
    cast('' as String) as _error,
    cast(null as Nullable(String)) as _raw_message,
    cast('' as String) as _violation
where 0

-- model telemetry_checked_from_telemetry_queue_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`telemetry_checked`

select *, multiIf(
    _error != '', _error,
    not ifNull((message != ''), 0), 'message_is_not_empty: the message is empty (telemetry lands whole, one JSON object a row: insert it with (message) FORMAT JSONAsString)',
    not ifNull((isValidUTF8(message) AND isValidJSON(message) AND JSONType(message) = 'Object'), 0), 'message_is_an_object: the message is not a JSON object in UTF-8, nested at most 1024 levels deep, its numbers within a Float64 (1e400 is not)',
    not ifNull((length(JSONExtractKeys(message)) = length(arrayDistinct(JSONExtractKeys(message)))), 0), 'keys_are_unique: the message has a duplicate key',
    not ifNull(((startsWith(JSONExtractRaw(message, 'event_id'), '"') AND NOT (match(JSONExtractRaw(message, 'event_id'), '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(message, concat('"', 'event_id', '"[ \t\n\r]*:[ \t\n\r]*', JSONExtractRaw(message, 'event_id'))))) AND JSONExtractString(message, 'event_id') != ''), 0), 'event_id_is_a_string: event_id is missing, empty or not a string',
    not ifNull(((startsWith(JSONExtractRaw(message, 'event_time'), '"') AND NOT (match(JSONExtractRaw(message, 'event_time'), '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(message, concat('"', 'event_time', '"[ \t\n\r]*:[ \t\n\r]*', JSONExtractRaw(message, 'event_time'))))) AND if(match(JSONExtractString(message, 'event_time'), '^(1969|19[7-9][0-9]|20[0-9]{2}|21[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$')
     AND (NOT (startsWith(JSONExtractString(message, 'event_time'), '1969-') OR startsWith(JSONExtractString(message, 'event_time'), '1970-01-01') OR startsWith(JSONExtractString(message, 'event_time'), '2149-'))
          OR parseDateTime64BestEffortOrNull(JSONExtractString(message, 'event_time'), 3, 'UTC') BETWEEN toDateTime64('1970-01-01 00:00:00', 3, 'UTC')
                              AND toDateTime64('2149-06-06 23:59:59.999', 3, 'UTC')),
     parseDateTime64BestEffortOrNull(JSONExtractString(message, 'event_time'), 3, 'UTC'), null) IS NOT NULL), 0), 'event_time_is_iso8601: event_time is missing or not an ISO 8601 time from 1970-01-01 to 2149-06-06 (UTC) with Z or an offset',
    not ifNull(((startsWith(JSONExtractRaw(message, 'event_type'), '"') AND NOT (match(JSONExtractRaw(message, 'event_type'), '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(message, concat('"', 'event_type', '"[ \t\n\r]*:[ \t\n\r]*', JSONExtractRaw(message, 'event_type'))))) AND match(JSONExtractString(message, 'event_type'), '^[a-z][a-z0-9_]*$') AND JSONExtractString(message, 'event_type') NOT IN ('workflow', 'job', 'job_log')), 0), 'event_type_is_a_telemetry_type: event_type is missing or not a lower-case identifier other than workflow, job, job_log',
    not ifNull(((startsWith(JSONExtractRaw(message, 'event_name'), '"') AND NOT (match(JSONExtractRaw(message, 'event_name'), '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(message, concat('"', 'event_name', '"[ \t\n\r]*:[ \t\n\r]*', JSONExtractRaw(message, 'event_name'))))) AND JSONExtractString(message, 'event_name') != ''), 0), 'event_name_is_a_string: event_name is missing, empty or not a string',
    not ifNull((NOT JSONHas(message, 'service_name') OR (startsWith(JSONExtractRaw(message, 'service_name'), '"') AND NOT (match(JSONExtractRaw(message, 'service_name'), '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(message, concat('"', 'service_name', '"[ \t\n\r]*:[ \t\n\r]*', JSONExtractRaw(message, 'service_name')))))), 0), 'service_name_is_a_string: service_name is not a JSON string',
    not ifNull((NOT JSONHas(message, 'service_version') OR (startsWith(JSONExtractRaw(message, 'service_version'), '"') AND NOT (match(JSONExtractRaw(message, 'service_version'), '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(message, concat('"', 'service_version', '"[ \t\n\r]*:[ \t\n\r]*', JSONExtractRaw(message, 'service_version')))))), 0), 'service_version_is_a_string: service_version is not a JSON string',
    not ifNull((NOT JSONHas(message, 'service_commit') OR (startsWith(JSONExtractRaw(message, 'service_commit'), '"') AND NOT (match(JSONExtractRaw(message, 'service_commit'), '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(message, concat('"', 'service_commit', '"[ \t\n\r]*:[ \t\n\r]*', JSONExtractRaw(message, 'service_commit')))))), 0), 'service_commit_is_a_string: service_commit is not a JSON string',
    not ifNull((NOT JSONHas(message, 'install_id') OR (startsWith(JSONExtractRaw(message, 'install_id'), '"') AND NOT (match(JSONExtractRaw(message, 'install_id'), '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(message, concat('"', 'install_id', '"[ \t\n\r]*:[ \t\n\r]*', JSONExtractRaw(message, 'install_id')))))), 0), 'install_id_is_a_string: install_id is not a JSON string',
    not ifNull((NOT JSONHas(message, 'user_id') OR (startsWith(JSONExtractRaw(message, 'user_id'), '"') AND NOT (match(JSONExtractRaw(message, 'user_id'), '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(message, concat('"', 'user_id', '"[ \t\n\r]*:[ \t\n\r]*', JSONExtractRaw(message, 'user_id')))))), 0), 'user_id_is_a_string: user_id is not a JSON string',
    not ifNull((NOT JSONHas(message, 'is_dev') OR JSONExtractRaw(message, 'is_dev') IN ('true', 'false')), 0), 'is_dev_is_a_boolean: is_dev is not a JSON boolean',
    not ifNull((NOT JSONHas(message, 'value') OR (match(JSONExtractRaw(message, 'value'), '^-?[0-9]') OR (match(JSONExtractRaw(message, 'value'), '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(message, concat('"', 'value', '"[ \t\n\r]*:[ \t\n\r]*', JSONExtractRaw(message, 'value')))))), 0), 'value_is_a_number: value is not a JSON number',
    not ifNull((JSONExtractString(message, 'event_type') != 'metric' OR JSONHas(message, 'value')), 0), 'metric_has_a_value: a metric event needs a value',
    ''
  ) as _violation
from `analytics_compile`.`telemetry_queue`

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

-- model telemetry_events_from_telemetry_checked_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`telemetry_events`


with
accepted as (
    select *
    from `analytics_compile`.`telemetry_checked`
    where throwIf(NOT (_offset IS NOT NULL AND _raw_message IS NOT NULL) AND ((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != '') OR _violation != ''), (
      select concat('telemetry event ', refusal.1, ' refused, ', refusal.2)
      from (
          select any((if(if(isValidJSON(message), JSONExtractString(message, 'event_id'), extract(message, '"event_id"\\s*:\\s*"((?:[^"\\\\\\x00-\\x1f]|\\\\[^\\x00-\\x1f])*)"')) = '', 'without an event_id', concat('"', leftUTF8(if(isValidJSON(message), JSONExtractString(message, 'event_id'), extract(message, '"event_id"\\s*:\\s*"((?:[^"\\\\\\x00-\\x1f]|\\\\[^\\x00-\\x1f])*)"')), 128), '"')), if((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != ''),
              'no_kafka_columns: _topic, _partition, _offset, _timestamp_ms, _raw_message, _error are set by Kafka ingest, never by a sender',
              _violation))) as refusal
          from `analytics_compile`.`telemetry_checked`
          where NOT (_offset IS NOT NULL AND _raw_message IS NOT NULL) AND ((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != '') OR _violation != '')
      )
  )) = 0
      and _violation = ''
),

incoming as (
    select
        JSONExtractString(message, 'event_id') as event_id,
        assumeNotNull(parseDateTime64BestEffortOrNull(JSONExtractString(message, 'event_time'), 3, 'UTC')) as event_time,
        JSONExtractString(message, 'event_type') as event_type,
        JSONExtractString(message, 'event_name') as event_name,
        JSONExtractString(message, 'user_id') as user_id,
        JSONExtractString(message, 'service_name') as service_name,
        if(
            (match(JSONExtractRaw(message, 'value'), '^-?[0-9]') OR (match(JSONExtractRaw(message, 'value'), '^"(-[0-9]{19,}|[0-9]{20,})"$') AND NOT match(message, concat('"', 'value', '"[ \t\n\r]*:[ \t\n\r]*', JSONExtractRaw(message, 'value'))))),
            toFloat64OrNull(trim(both '"' from JSONExtractRaw(message, 'value'))),
            null
        ) as value,
        cast(message as JSON) as attributes,
        ifNull(_topic, 'telemetry') as kafka_topic,
    _partition as kafka_partition,
    _offset as kafka_offset,
    _timestamp_ms as kafka_timestamp,
        now64(3, 'UTC') as ingested_at,
        sipHash128('telemetry', event_id) as dedup_key
    from accepted
    limit 1 by dedup_key
)



select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('telemetry', JSONExtractString(message, 'event_id')) from `analytics_compile`.`telemetry_checked`)
  )

-- model telemetry_messages
-- config {"enabled": true, "engine": "Kafka()", "materialized": "incremental", "settings": {"kafka_broker_list": "kafka-1:9092,kafka-2:9092", "kafka_flush_interval_ms": 250, "kafka_format": "RawBLOB", "kafka_group_name": "analytics_telemetry", "kafka_max_block_size": 65536, "kafka_num_consumers": 1, "kafka_topic_list": "telemetry"}}
select
    cast('' as String) as payload
where 0

-- model telemetry_queue
-- config {"enabled": true, "engine": "Null()", "materialized": "incremental"}
select
    
    cast('' as String) as message,
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms,
    cast('' as String) as _error,
    cast(null as Nullable(String)) as _raw_message
where 0

-- model telemetry_queue_from_telemetry_messages_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`telemetry_queue`

with
    isValidUTF8(payload) as is_utf8,
    is_utf8 and isValidJSON(payload) as is_json,
    if(is_json, JSONType(payload), 'Null') as json_type
select
    payload as message,
    _topic,
    _partition,
    _offset,
    _timestamp_ms,
    multiIf(
        length(payload) >= 5 AND startsWith(payload, char(0)),
            'the message begins with byte 0 and is not JSON: Confluent Schema Registry''s serializers frame a message so (byte 0, a 4-byte schema id, then the data); a message must be the event''s JSON alone',
        not is_utf8, 'the message is not valid UTF-8',
        payload = '', 'the message is empty',
        not is_json AND (position(payload, '\n') > 0 AND isValidJSON(substring(payload, 1, position(payload, '\n') - 1))),
            'the message is not one JSON value: its first line is a whole one and more follows (a message carries one event; events are not read line by line)',
        not is_json, 'the message is not valid JSON',
        json_type != 'Object', 'the message is a JSON ' || lower(json_type) || ', not an object',
        '') as _error,
    payload as _raw_message
from `analytics_compile`.`telemetry_messages`

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

-- model workflow_changes
-- config {"enabled": true, "engine": "MergeTree()", "materialized": "incremental", "order_by": "changed_at", "ttl": "toDateTime(changed_at) + interval 15 minute"}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast(0 as DateTime64(6, 'UTC')) as changed_at
where 0

-- model workflow_changes_from_job_duration_daily_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_changes`


select distinct
    user_id,
    workflow_id,
    now64(6, 'UTC') as changed_at
from `analytics_compile`.`job_duration_daily`

-- model workflow_changes_from_workflow_totals_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_changes`


select distinct
    user_id,
    workflow_id,
    now64(6, 'UTC') as changed_at
from `analytics_compile`.`workflow_totals`

-- model workflow_daily
-- config {"enabled": true, "engine": "AggregatingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id, day)", "partition_by": "toYYYYMM(day)", "settings": {"index_granularity": 1024}}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('1970-01-01' as Date) as day,
    cast((toDateTime64(0, 3, 'UTC'), '') as SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), String))) as kind,
    
    cast(0 as SimpleAggregateFunction(sum, Int64)) as workflow_events,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs_completed,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs_failed,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs_cancelled,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as job_execution_seconds,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as joblogs
where 0

-- model workflow_daily_from_analytics_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_daily`


select
    user_id,
    workflow_id,
    toDate(received_at) as day,
    max(if(if(event_type = 'WORKFLOWS', kind, '') = '', (toDateTime64(0, 3, 'UTC'), ''), (toDateTime64(received_at, 3, 'UTC'), toString(if(event_type = 'WORKFLOWS', kind, ''))))) as kind,
    
    
    toInt64(0) as workflow_events,
    toInt64(sum(event_type = 'JOBS')) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(sum(if(event_type = 'JOBS', job_execution_seconds, 0))) as job_execution_seconds,
    toInt64(sum(if(event_type = 'LOGS', log_count, 0))) as joblogs
from `analytics_compile`.`analytics_events`
group by all

-- model workflow_daily_from_job_completions_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_daily`


select
    user_id,
    workflow_id,
    toDate(ended_at) as day,
    max((toDateTime64(0, 3, 'UTC'), '')) as kind,
    
    
    toInt64(0) as workflow_events,
    toInt64(0) as jobs,
    toInt64(sum(outcome = 'completed')) as jobs_completed,
    toInt64(sum(outcome = 'failed')) as jobs_failed,
    toInt64(sum(outcome = 'cancelled')) as jobs_cancelled,
    toInt64(sum(if(outcome in ('completed', 'failed'), duration_seconds, 0))) as job_execution_seconds,
    toInt64(0) as joblogs
from `analytics_compile`.`job_completions`
group by all

-- model workflow_daily_from_job_first_seen_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_daily`


select
    user_id,
    workflow_id,
    toDate(first_event_time) as day,
    max((toDateTime64(0, 3, 'UTC'), '')) as kind,
    
    
    toInt64(0) as workflow_events,
    toInt64(sum(1)) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(0) as job_execution_seconds,
    toInt64(0) as joblogs
from `analytics_compile`.`job_first_seen`
group by all

-- model workflow_daily_from_job_log_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_daily`


select
    user_id,
    workflow_id,
    toDate(event_time) as day,
    max((toDateTime64(0, 3, 'UTC'), '')) as kind,
    
    
    toInt64(0) as workflow_events,
    toInt64(0) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(0) as job_execution_seconds,
    toInt64(sum(count)) as joblogs
from `analytics_compile`.`job_log_events`
group by all

-- model workflow_daily_from_workflow_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_daily`


select
    user_id,
    workflow_id,
    toDate(event_time) as day,
    max(if(kind = '', (toDateTime64(0, 3, 'UTC'), ''), (toDateTime64(event_time, 3, 'UTC'), toString(kind)))) as kind,
    
    
    toInt64(sum(1)) as workflow_events,
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

-- model workflow_events_from_workflows_checked_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_events`


with
accepted as (
    select *
    from `analytics_compile`.`workflows_checked`
    where throwIf(NOT (_offset IS NOT NULL AND _raw_message IS NOT NULL) AND ((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != '') OR _violation != ''), (
      select concat('workflows event ', refusal.1, ' refused, ', refusal.2)
      from (
          select any((if(ifNull(event_id, '') = '', 'without an event_id', concat('"', leftUTF8(ifNull(event_id, ''), 128), '"')), if((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != ''),
              'no_kafka_columns: _topic, _partition, _offset, _timestamp_ms, _raw_message, _error are set by Kafka ingest, never by a sender',
              _violation))) as refusal
          from `analytics_compile`.`workflows_checked`
          where NOT (_offset IS NOT NULL AND _raw_message IS NOT NULL) AND ((_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != '') OR _violation != '')
      )
  )) = 0
      and _violation = ''
),

incoming as (
    select
        assumeNotNull(event_id) as event_id,
        assumeNotNull(parseDateTime64BestEffortOrNull(event_time, 3, 'UTC')) as event_time,
        assumeNotNull(event_name) as event_name,
        assumeNotNull(user_id) as user_id,
        assumeNotNull(workflow_id) as workflow_id,
        ifNull(kind, '') as kind,
        ifNull(_topic, 'workflows') as kafka_topic,
    _partition as kafka_partition,
    _offset as kafka_offset,
    _timestamp_ms as kafka_timestamp,
        now64(3, 'UTC') as ingested_at,
        sipHash128('workflows', event_id) as dedup_key
    from accepted
    limit 1 by dedup_key
)


select * from incoming
  where dedup_key not in (
      select key from `analytics_compile`.`seen_keys`
      where key in (select sipHash128('workflows', event_id) from `analytics_compile`.`workflows_checked`)
  )

-- model workflow_totals
-- config {"enabled": true, "engine": "AggregatingMergeTree()", "materialized": "incremental", "order_by": "(user_id, workflow_id)", "settings": {"index_granularity": 1024}}
select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast((toDateTime64(0, 3, 'UTC'), '') as SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), String))) as kind,
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

-- model workflow_totals_from_analytics_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_totals`


select
    user_id,
    workflow_id,
    max(if(if(event_type = 'WORKFLOWS', kind, '') = '', (toDateTime64(0, 3, 'UTC'), ''), (toDateTime64(received_at, 3, 'UTC'), toString(if(event_type = 'WORKFLOWS', kind, ''))))) as kind,
    
    minOrNull(received_at) as first_event_at,
    maxOrNull(received_at) as last_event_at,
    
    toInt64(0) as workflow_events,
    toInt64(sum(event_type = 'JOBS')) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(sum(if(event_type = 'JOBS', job_execution_seconds, 0))) as job_execution_seconds,
    toInt64(sum(if(event_type = 'LOGS', log_count, 0))) as joblogs
from `analytics_compile`.`analytics_events`
group by all

-- model workflow_totals_from_job_completions_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_totals`


select
    user_id,
    workflow_id,
    max((toDateTime64(0, 3, 'UTC'), '')) as kind,
    
    minOrNull(ended_at) as first_event_at,
    maxOrNull(ended_at) as last_event_at,
    
    toInt64(0) as workflow_events,
    toInt64(0) as jobs,
    toInt64(sum(outcome = 'completed')) as jobs_completed,
    toInt64(sum(outcome = 'failed')) as jobs_failed,
    toInt64(sum(outcome = 'cancelled')) as jobs_cancelled,
    toInt64(sum(if(outcome in ('completed', 'failed'), duration_seconds, 0))) as job_execution_seconds,
    toInt64(0) as joblogs
from `analytics_compile`.`job_completions`
group by all

-- model workflow_totals_from_job_first_seen_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_totals`


select
    user_id,
    workflow_id,
    max((toDateTime64(0, 3, 'UTC'), '')) as kind,
    
    minOrNull(first_event_time) as first_event_at,
    maxOrNull(first_event_time) as last_event_at,
    
    toInt64(0) as workflow_events,
    toInt64(sum(1)) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(0) as job_execution_seconds,
    toInt64(0) as joblogs
from `analytics_compile`.`job_first_seen`
group by all

-- model workflow_totals_from_job_log_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_totals`


select
    user_id,
    workflow_id,
    max((toDateTime64(0, 3, 'UTC'), '')) as kind,
    
    minOrNull(event_time) as first_event_at,
    maxOrNull(event_time) as last_event_at,
    
    toInt64(0) as workflow_events,
    toInt64(0) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(0) as job_execution_seconds,
    toInt64(sum(count)) as joblogs
from `analytics_compile`.`job_log_events`
group by all

-- model workflow_totals_from_workflow_events_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflow_totals`


select
    user_id,
    workflow_id,
    max(if(kind = '', (toDateTime64(0, 3, 'UTC'), ''), (toDateTime64(event_time, 3, 'UTC'), toString(kind)))) as kind,
    
    minOrNull(event_time) as first_event_at,
    maxOrNull(event_time) as last_event_at,
    maxIfOrNull(event_time, event_name = 'terminated') as terminated_at,
    maxIfOrNull(event_time, event_name = 'deleted') as deleted_at,
    
    toInt64(sum(1)) as workflow_events,
    toInt64(0) as jobs,
    toInt64(0) as jobs_completed,
    toInt64(0) as jobs_failed,
    toInt64(0) as jobs_cancelled,
    toInt64(0) as job_execution_seconds,
    toInt64(0) as joblogs
from `analytics_compile`.`workflow_events`
group by all

-- model workflows_checked
-- config {"enabled": true, "engine": "Null()", "materialized": "incremental"}
select
    
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(String)) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as kind,
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms,
    cast('' as String) as _error,
    cast(null as Nullable(String)) as _raw_message,
    cast('' as String) as _violation
where 0

-- model workflows_checked_from_workflows_queue_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflows_checked`

select *, multiIf(
    _error != '', _error,
    not ifNull((isValidUTF8(ifNull(event_id, '')) AND isValidUTF8(ifNull(event_time, '')) AND isValidUTF8(ifNull(event_type, '')) AND isValidUTF8(ifNull(event_name, '')) AND isValidUTF8(ifNull(user_id, '')) AND isValidUTF8(ifNull(workflow_id, '')) AND isValidUTF8(ifNull(kind, ''))), 0), 'text_is_utf8: a field holds bytes that are not UTF-8',
    not ifNull((event_id IS NOT NULL AND event_id != ''), 0), 'event_id_is_required: event_id is missing or empty',
    not ifNull((if(match(event_time, '^(1969|19[7-9][0-9]|20[0-9]{2}|21[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$')
     AND (NOT (startsWith(event_time, '1969-') OR startsWith(event_time, '1970-01-01') OR startsWith(event_time, '2149-'))
          OR parseDateTime64BestEffortOrNull(event_time, 3, 'UTC') BETWEEN toDateTime64('1970-01-01 00:00:00', 3, 'UTC')
                              AND toDateTime64('2149-06-06 23:59:59.999', 3, 'UTC')),
     parseDateTime64BestEffortOrNull(event_time, 3, 'UTC'), null) IS NOT NULL), 0), 'event_time_is_iso8601: event_time is missing or not an ISO 8601 time from 1970-01-01 to 2149-06-06 (UTC) with Z or an offset',
    not ifNull((event_type = 'workflow'), 0), 'event_type_is_workflow: event_type is not \'workflow\'',
    not ifNull((event_name IS NOT NULL AND event_name != ''), 0), 'event_name_is_required: event_name is missing or empty',
    not ifNull((event_name IN ('created', 'updated', 'terminated', 'deleted')), 0), 'event_name_is_known: event_name is not one of created, updated, terminated, deleted',
    not ifNull((user_id IS NOT NULL AND user_id != ''), 0), 'user_id_is_required: user_id is missing or empty',
    not ifNull((workflow_id IS NOT NULL AND workflow_id != ''), 0), 'workflow_id_is_required: workflow_id is missing or empty',
    not ifNull((kind IS NOT NULL AND kind != ''), 0), 'kind_is_required: kind is missing or empty',
    ''
  ) as _violation
from `analytics_compile`.`workflows_queue`

-- model workflows_messages
-- config {"enabled": true, "engine": "Kafka()", "materialized": "incremental", "settings": {"kafka_broker_list": "kafka-1:9092,kafka-2:9092", "kafka_flush_interval_ms": 250, "kafka_format": "RawBLOB", "kafka_group_name": "analytics_workflows", "kafka_max_block_size": 65536, "kafka_num_consumers": 1, "kafka_topic_list": "workflows"}}
select
    cast('' as String) as payload
where 0

-- model workflows_queue
-- config {"enabled": true, "engine": "Null()", "materialized": "incremental"}
select
    
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(String)) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as kind,
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms,
    cast('' as String) as _error,
    cast(null as Nullable(String)) as _raw_message
where 0

-- model workflows_queue_from_workflows_messages_mv
-- config {"enabled": true, "materialized": "materialized_view"}
-- materialization_target_table: `analytics_compile`.`workflows_queue`

with
    isValidUTF8(payload) as is_utf8,
    if(is_utf8, JSONExtractKeysAndValuesRaw(payload), []) as pairs,
    notEmpty(pairs) or (is_utf8 and isValidJSON(payload)) as is_json,
    if(notEmpty(pairs), 'Object', if(is_json, JSONType(payload), 'Null')) as json_type,
    mapFromArrays(pairs.1, pairs.2) as fields,
    JSONExtract(if(json_type = 'Object', payload, '{}'), 'Tuple(event_id Nullable(String), event_time Nullable(String), event_type Nullable(String), event_name Nullable(String), user_id Nullable(String), workflow_id Nullable(String), kind Nullable(String))') as string_values,
    arrayMap((key, raw) -> multiIf(
        key NOT IN ('event_id', 'event_time', 'event_type', 'event_name', 'user_id', 'workflow_id', 'kind'), '',
        left(raw, 1) NOT IN ('"', 'n', ''), key || ' is ' || transform(left(raw, 1), ['{', '[', 't', 'f', '"'], ['an object', 'an array', 'a boolean', 'a boolean', 'a string'], 'a number') || ', not a string',
        match(raw, '^"(-[0-9]{19,}|[0-9]{20,})"$'), '?',
        ''), pairs.1, pairs.2) as string_checks,
    if(NOT arrayExists(check -> check != '', string_checks), '', arrayFirst(error -> error != '', arrayMap(
        pair -> if(pair.3 = '?', if(NOT match(payload, concat('"', pair.1, '"[ \t\n\r]*:[ \t\n\r]*', pair.2)), pair.1 || ' is a number, not a string', ''), pair.3),
        arraySort(pair -> indexOf(['event_id', 'event_time', 'event_type', 'event_name', 'user_id', 'workflow_id', 'kind'], pair.1),
                  arrayZip(pairs.1, pairs.2, string_checks))))) as string_error
select
    tupleElement(string_values, 'event_id') as event_id,
    tupleElement(string_values, 'event_time') as event_time,
    tupleElement(string_values, 'event_type') as event_type,
    tupleElement(string_values, 'event_name') as event_name,
    tupleElement(string_values, 'user_id') as user_id,
    tupleElement(string_values, 'workflow_id') as workflow_id,
    tupleElement(string_values, 'kind') as kind,
    _topic,
    _partition,
    _offset,
    _timestamp_ms,
    multiIf(
        length(payload) >= 5 AND startsWith(payload, char(0)),
            'the message begins with byte 0 and is not JSON: Confluent Schema Registry''s serializers frame a message so (byte 0, a 4-byte schema id, then the data); a message must be the event''s JSON alone',
        not is_utf8, 'the message is not valid UTF-8',
        payload = '', 'the message is empty',
        not is_json AND (position(payload, '\n') > 0 AND isValidJSON(substring(payload, 1, position(payload, '\n') - 1))),
            'the message is not one JSON value: its first line is a whole one and more follows (a message carries one event; events are not read line by line)',
        not is_json, 'the message is not valid JSON',
        json_type != 'Object', 'the message is a JSON ' || lower(json_type) || ', not an object',
        length(pairs) != length(arrayDistinct(pairs.1)), 'the message has a duplicate key',
        hasAny(pairs.1, ['_topic', '_partition', '_offset', '_timestamp_ms', '_raw_message', '_error']),
            arrayFirst(key -> has(['_topic', '_partition', '_offset', '_timestamp_ms', '_raw_message', '_error'], key), pairs.1) || ' is set by Kafka ingest, never by a sender',
        string_error != '', string_error,
        '') as _error,
    payload as _raw_message
from `analytics_compile`.`workflows_messages`

-- disabled job_completions_all

-- disabled job_duration_daily_all

-- disabled job_first_seen_all

-- disabled job_log_events_all

-- disabled job_log_totals_all

-- disabled workflow_daily_all

-- disabled workflow_totals_all
