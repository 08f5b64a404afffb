// A user's Go program against the embedded ClickHouse, through clickhouse-go over HTTP with its
// defaults (Native format at the client's protocol revision) and the compression it is given.
// It prints one JSON document with what it read back; tests/test_clients.py checks it.
//
//	go run . -addr 127.0.0.1:8123 -compression lz4 -database go_test
//
// With -query (repeatable), it runs those queries instead and prints each one's column types and
// rows, every value scanned into the type clickhouse-go chooses for its column (JSON, Dynamic,
// Variant...) and marshalled as JSON, or the error the query or a scan met.
//
//	go run . -addr 127.0.0.1:8123 -query "SELECT '{\"a\":1}'::JSON"
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

type row struct {
	ID      uint64            `json:"id"`
	Name    string            `json:"name"`
	Score   float64           `json:"score"`
	Tags    []string          `json:"tags"`
	Label   string            `json:"label"`
	Maybe   *int32            `json:"maybe"`
	At      time.Time         `json:"at"`
	Counts  map[string]uint64 `json:"counts"`
	Decimal string            `json:"decimal"`
}

type report struct {
	ServerVersion  string   `json:"server_version"`
	Rows           []row    `json:"rows"`
	Literal        string   `json:"literal"`
	LikeCount      uint64   `json:"like_count"`
	EqualCount     uint64   `json:"equal_count"`
	ParameterNames []string `json:"parameter_names"`
	BigCount       uint64   `json:"big_count"`
	BigSum         uint64   `json:"big_sum"`
	Error          string   `json:"error"`
}

type queryResult struct {
	Query string   `json:"query"`
	Types []string `json:"types"`
	Rows  [][]any  `json:"rows"`
	Error string   `json:"error"`
}

type queryReport struct {
	Results []queryResult `json:"results"`
	Error   string        `json:"error"`
}

type queryFlags []string

func (q *queryFlags) String() string     { return strings.Join(*q, "; ") }
func (q *queryFlags) Set(v string) error { *q = append(*q, v); return nil }

func main() {
	addr := flag.String("addr", "127.0.0.1:8123", "host:port of the HTTP interface")
	compression := flag.String("compression", "none", "none, lz4 or zstd")
	database := flag.String("database", "default", "database to create the test table in")
	var queries queryFlags
	flag.Var(&queries, "query", "a query whose rows to print instead of running the checks (repeatable)")
	flag.Parse()

	var out any
	if len(queries) > 0 {
		results := queryReport{}
		if err := runQueries(*addr, *compression, *database, queries, &results); err != nil {
			results.Error = err.Error()
		}
		out = results
	} else {
		checks := report{}
		if err := run(*addr, *compression, *database, &checks); err != nil {
			checks.Error = err.Error()
		}
		out = checks
	}
	encoder := json.NewEncoder(os.Stdout)
	if err := encoder.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func open(addr, compression, database string) (clickhouse.Conn, error) {
	options := &clickhouse.Options{
		Addr:     []string{addr},
		Protocol: clickhouse.HTTP,
		Auth:     clickhouse.Auth{Database: database, Username: "default"},
	}
	switch compression {
	case "lz4":
		options.Compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
	case "zstd":
		options.Compression = &clickhouse.Compression{Method: clickhouse.CompressionZSTD}
	}
	return clickhouse.Open(options)
}

func runQueries(addr, compression, database string, queries []string, out *queryReport) error {
	conn, err := open(addr, compression, database)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer conn.Close()
	for _, query := range queries {
		result := queryResult{Query: query, Rows: [][]any{}}
		if err := readRows(conn, query, &result); err != nil {
			result.Error = err.Error()
		}
		out.Results = append(out.Results, result)
	}
	return nil
}

func readRows(conn clickhouse.Conn, query string, result *queryResult) error {
	rows, err := conn.Query(context.Background(), query)
	if err != nil {
		return err
	}
	defer rows.Close()
	columns := rows.ColumnTypes()
	for _, column := range columns {
		result.Types = append(result.Types, column.DatabaseTypeName())
	}
	for rows.Next() {
		values := make([]any, len(columns))
		for i, column := range columns {
			values[i] = reflect.New(column.ScanType()).Interface()
		}
		if err := rows.Scan(values...); err != nil {
			return err
		}
		result.Rows = append(result.Rows, values)
	}
	return rows.Err()
}

func run(addr, compression, database string, out *report) error {
	conn, err := open(addr, compression, database)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer conn.Close()
	ctx := context.Background()
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	version, err := conn.ServerVersion()
	if err != nil {
		return fmt.Errorf("server version: %w", err)
	}
	out.ServerVersion = version.String()

	if err := conn.Exec(ctx, `CREATE TABLE people (
		id UInt64, name String, score Float64, tags Array(String), label LowCardinality(String),
		maybe Nullable(Int32), at DateTime64(3, 'UTC'), counts Map(String, UInt64), amount Decimal(18, 4)
	) ENGINE = MergeTree ORDER BY id`); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO people")
	if err != nil {
		return fmt.Errorf("prepare batch: %w", err)
	}
	names := []string{"Zoë", "Ådne", "José", "北京", "plain"}
	for i, name := range names {
		var maybe *int32
		if i%2 == 0 {
			value := int32(-i)
			maybe = &value
		}
		at := time.Date(2024, 2, 29, 23, 59, 58, int(i)*1_000_000, time.UTC)
		err := batch.Append(uint64(i), name, float64(i)/4, []string{"tag é", name}, "label-"+name, maybe, at,
			map[string]uint64{"ü": uint64(i)}, fmt.Sprintf("%d.25", i))
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}

	rows, err := conn.Query(ctx, "SELECT id, name, score, tags, label, maybe, at, counts, toString(amount) FROM people ORDER BY id")
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.ID, &r.Name, &r.Score, &r.Tags, &r.Label, &r.Maybe, &r.At, &r.Counts, &r.Decimal); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		out.Rows = append(out.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rows: %w", err)
	}

	// Non-ASCII in the SQL text itself: literals, LIKE patterns, comments.
	if err := conn.QueryRow(ctx, "SELECT 'é ✓ 日本' /* commentaire: à */").Scan(&out.Literal); err != nil {
		return fmt.Errorf("literal: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM people WHERE name LIKE '%ë%' OR name LIKE '%京'").Scan(&out.LikeCount); err != nil {
		return fmt.Errorf("like: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM people WHERE name = 'José'").Scan(&out.EqualCount); err != nil {
		return fmt.Errorf("equal: %w", err)
	}
	// Named parameters, bound by the server.
	paramRows, err := conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"who": "Ådne"})),
		"SELECT name FROM people WHERE name = {who:String} OR name = 'Zoë' ORDER BY id")
	if err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	for paramRows.Next() {
		var name string
		if err := paramRows.Scan(&name); err != nil {
			return fmt.Errorf("parameters scan: %w", err)
		}
		out.ParameterNames = append(out.ParameterNames, name)
	}
	// A result of many blocks.
	if err := conn.QueryRow(ctx, "SELECT count(), sum(n) FROM (SELECT number AS n FROM numbers(3000000))").Scan(&out.BigCount, &out.BigSum); err != nil {
		return fmt.Errorf("big: %w", err)
	}
	many, err := conn.Query(ctx, "SELECT number, toString(number) FROM numbers(300000)")
	if err != nil {
		return fmt.Errorf("many: %w", err)
	}
	var seen uint64
	for many.Next() {
		var n uint64
		var s string
		if err := many.Scan(&n, &s); err != nil {
			return fmt.Errorf("many scan: %w", err)
		}
		if fmt.Sprint(n) != s {
			return fmt.Errorf("many: row %d reads %q", n, s)
		}
		seen++
	}
	if seen != 300000 {
		return fmt.Errorf("many: %d rows instead of 300000", seen)
	}
	return many.Err()
}
