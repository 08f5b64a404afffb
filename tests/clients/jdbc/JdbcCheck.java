// A BI tool's view of the embedded ClickHouse, through the official JDBC driver with its default
// settings: metadata calls, prepared statements with non-ASCII values, a batch insert, the common
// types. Prints one JSON document; tests/test_clients_jdbc.py checks it.
//
//   java -cp '.analytics/tools/jdbc/*' tests/clients/jdbc/JdbcCheck.java jdbc:clickhouse://127.0.0.1:8123/db
import java.math.BigDecimal;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.sql.Timestamp;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public class JdbcCheck {
    public static void main(String[] args) {
        Map<String, Object> report = new LinkedHashMap<>();
        try (Connection connection = DriverManager.getConnection(args[0])) {
            run(connection, report);
        } catch (Exception error) {
            report.put("error", error.toString() + (error.getCause() != null ? " / " + error.getCause() : ""));
        }
        System.out.println(json(report));
    }

    static void run(Connection connection, Map<String, Object> report) throws Exception {
        DatabaseMetaData meta = connection.getMetaData();
        report.put("product", meta.getDatabaseProductName());
        report.put("product_version", meta.getDatabaseProductVersion());
        String database = connection.getSchema();
        report.put("schema", database);

        try (Statement statement = connection.createStatement()) {
            statement.execute("CREATE TABLE people (id UInt32, name String, score Float64, born Date, "
                + "at DateTime64(3, 'UTC'), tags Array(String), maybe Nullable(Int64), amount Decimal(18, 4), "
                + "uid UUID, flag Bool) ENGINE = MergeTree ORDER BY id");
        }

        List<String> tables = new ArrayList<>();
        try (ResultSet rs = meta.getTables(null, database, "%", null)) {
            while (rs.next()) {
                tables.add(rs.getString("TABLE_NAME") + ":" + rs.getString("TABLE_TYPE"));
            }
        }
        report.put("tables", tables);
        List<String> columns = new ArrayList<>();
        try (ResultSet rs = meta.getColumns(null, database, "people", "%")) {
            while (rs.next()) {
                columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
            }
        }
        report.put("columns", columns);
        List<String> schemas = new ArrayList<>();
        try (ResultSet rs = meta.getSchemas()) {
            while (rs.next()) {
                schemas.add(rs.getString("TABLE_SCHEM"));
            }
        }
        report.put("schemas", schemas);

        String[] names = {"Zoë", "Ådne", "José", "北京", "it's \"quoted\""};
        try (PreparedStatement insert = connection.prepareStatement(
                "INSERT INTO people (id, name, score, born, at, tags, maybe, amount, uid, flag) "
                + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) {
            for (int i = 0; i < names.length; i++) {
                insert.setInt(1, i);
                insert.setString(2, names[i]);
                insert.setDouble(3, i / 4.0);
                insert.setDate(4, java.sql.Date.valueOf("2024-02-2" + (i + 1)));
                insert.setTimestamp(5, Timestamp.valueOf("2024-02-29 23:59:5" + i + ".123"));
                insert.setArray(6, connection.createArrayOf("String", new String[] {"tag é", names[i]}));
                if (i % 2 == 0) {
                    insert.setLong(7, -1L * i);
                } else {
                    insert.setNull(7, java.sql.Types.BIGINT);
                }
                insert.setBigDecimal(8, new BigDecimal(i + ".2500"));
                insert.setObject(9, java.util.UUID.fromString("00000000-0000-0000-0000-00000000000" + i));
                insert.setBoolean(10, i % 2 == 0);
                insert.addBatch();
            }
            int[] counts = insert.executeBatch();
            report.put("batch_statements", counts.length);
        }

        List<Map<String, Object>> rows = new ArrayList<>();
        try (Statement statement = connection.createStatement();
             ResultSet rs = statement.executeQuery("SELECT * FROM people ORDER BY id")) {
            while (rs.next()) {
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("id", rs.getInt("id"));
                row.put("name", rs.getString("name"));
                row.put("score", rs.getDouble("score"));
                row.put("born", rs.getDate("born").toString());
                row.put("at", rs.getTimestamp("at").toString());
                Array tags = rs.getArray("tags");
                List<Object> tagList = new ArrayList<>();
                for (Object tag : (Object[]) tags.getArray()) {
                    tagList.add(tag);
                }
                row.put("tags", tagList);
                long maybe = rs.getLong("maybe");
                row.put("maybe", rs.wasNull() ? null : maybe);
                row.put("amount", rs.getBigDecimal("amount").toPlainString());
                row.put("uid", String.valueOf(rs.getObject("uid")));
                row.put("flag", rs.getBoolean("flag"));
                rows.add(row);
            }
        }
        report.put("rows", rows);

        try (PreparedStatement select = connection.prepareStatement(
                "SELECT id, name FROM people WHERE name = ? OR name LIKE ? ORDER BY id")) {
            select.setString(1, "北京");
            select.setString(2, "%ë%");
            List<String> found = new ArrayList<>();
            try (ResultSet rs = select.executeQuery()) {
                while (rs.next()) {
                    found.add(rs.getInt(1) + ":" + rs.getString(2));
                }
            }
            report.put("prepared_select", found);
        }
        try (Statement statement = connection.createStatement();
             ResultSet rs = statement.executeQuery("SELECT 'é ✓ 日本' AS s /* à */, count() FROM people WHERE name = 'José'")) {
            rs.next();
            report.put("literal", rs.getString(1));
            report.put("literal_count", rs.getLong(2));
        }
        // A DateTime column with a zone of its own, as a BI tool shows it: the type names the zone and
        // the value is that zone's wall-clock time.
        try (Statement statement = connection.createStatement();
             ResultSet rs = statement.executeQuery(
                     "SELECT toDateTime('2024-07-01 12:00:00', 'Europe/Berlin') AS berlin")) {
            rs.next();
            report.put("zoned_type", rs.getMetaData().getColumnTypeName(1));
            report.put("zoned_text", rs.getString(1));
            report.put("zoned", String.valueOf(rs.getObject(1, java.time.ZonedDateTime.class)));
        }
        try (Statement statement = connection.createStatement()) {
            statement.executeQuery("SELECT * FROM no_such_table");
            report.put("missing_table_error", null);
        } catch (java.sql.SQLException error) {
            report.put("missing_table_error", error.getMessage());
        }
    }

    static String json(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof Number || value instanceof Boolean) {
            return value.toString();
        }
        if (value instanceof Map<?, ?> map) {
            List<String> parts = new ArrayList<>();
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                parts.add(json(entry.getKey().toString()) + ":" + json(entry.getValue()));
            }
            return "{" + String.join(",", parts) + "}";
        }
        if (value instanceof List<?> list) {
            List<String> parts = new ArrayList<>();
            for (Object item : list) {
                parts.add(json(item));
            }
            return "[" + String.join(",", parts) + "]";
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : value.toString().toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }
}
