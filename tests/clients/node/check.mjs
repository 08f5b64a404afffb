// A user's Node program against the embedded ClickHouse, through @clickhouse/client with its defaults.
// Prints one JSON document with what it saw; tests/test_clients_node.py checks it.
//
//   node check.mjs http://127.0.0.1:8123 node_db
import { createClient } from '@clickhouse/client'

const [url, database] = process.argv.slice(2)
const report = {}

async function main() {
  const client = createClient({ url, database })
  try {
    report.ping = (await client.ping()).success

    await client.command({
      query: `CREATE TABLE events (id UInt32, name String, at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id`,
    })
    await client.insert({
      table: 'events',
      values: [
        { id: 1, name: 'Zoë', at: '2024-02-29 23:59:58.001' },
        { id: 2, name: '北京', at: '2024-03-01 00:00:00.000' },
      ],
      format: 'JSONEachRow',
    })
    const rows = await client.query({ query: 'SELECT id, name FROM events ORDER BY id', format: 'JSONEachRow' })
    report.rows = await rows.json()
    const literal = await client.query({ query: "SELECT 'é ✓' AS s, count() AS n FROM events WHERE name LIKE '%ë%'", format: 'JSONEachRow' })
    report.literal = await literal.json()
    const bound = await client.query({
      query: 'SELECT name FROM events WHERE name = {who: String}',
      format: 'JSONEachRow',
      query_params: { who: '北京' },
    })
    report.bound = await bound.json()

    // Streaming: a large result read row by row as it arrives.
    const stream = await client.query({ query: 'SELECT number FROM numbers(500000)', format: 'JSONCompactEachRow' })
    let streamed = 0
    let sum = 0
    for await (const batch of stream.stream()) {
      for (const row of batch) {
        streamed += 1
        sum += Number(row.json()[0])
      }
    }
    report.streamed = { rows: streamed, sum }

    // An error after the first blocks have been sent.
    try {
      const failing = await client.query({
        query: "SELECT number, throwIf(number = 300000, 'late failure') FROM numbers(400000)",
        format: 'JSONCompactEachRow',
        clickhouse_settings: { max_block_size: '10000' },
      })
      let seen = 0
      for await (const batch of failing.stream()) {
        seen += batch.length
      }
      report.mid_stream_error = { seen, message: null }
    } catch (error) {
      report.mid_stream_error = { message: error.message, code: error.code ?? null }
    }

    // Sessions: a temporary table lives in its session only.
    const session = createClient({ url, database, session_id: `node-${process.pid}-${Date.now()}` })
    try {
      await session.command({ query: 'CREATE TEMPORARY TABLE scratch (x UInt8)' })
      await session.command({ query: 'INSERT INTO scratch VALUES (1), (2), (3)' })
      const inSession = await session.query({ query: 'SELECT sum(x) AS total FROM scratch', format: 'JSONEachRow' })
      report.session_sum = (await inSession.json())[0].total
    } finally {
      await session.close()
    }
    try {
      await client.query({ query: 'SELECT sum(x) FROM scratch', format: 'JSONEachRow' })
      report.outside_session = 'visible'
    } catch (error) {
      report.outside_session = error.message
    }
  } finally {
    await client.close()
  }
}

main()
  .catch((error) => {
    report.error = String(error && error.stack ? error.stack : error)
  })
  .finally(() => {
    process.stdout.write(JSON.stringify(report) + '\n')
  })
