//! Small SQL helpers for tests: rows as string maps, single values.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use crate::{Result, mysql_err};

/// A row as column name → text (`None` for NULL).
pub type RowMap = HashMap<String, Option<String>>;

fn text(value: Option<&Value>) -> Option<String> {
    match value {
        None | Some(Value::NULL) => None,
        Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(other) => Some(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}

/// A driver error as one sentence: the driver's own text repeats its I/O prefix
/// ("Input/output error: Input/output error: …").
pub fn error_text(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => format!("I/O error: {io}"),
        other => other.to_string(),
    }
}

pub fn row_to_map(row: &Row) -> RowMap {
    row.columns_ref()
        .iter()
        .enumerate()
        .map(|(i, col)| (col.name_str().into_owned(), text(row.as_ref(i))))
        .collect()
}

/// Every row of `sql` as maps.
pub async fn query_maps(conn: &mut Conn, sql: &str) -> Result<Vec<RowMap>> {
    let rows: Vec<Row> = conn
        .query(sql)
        .await
        .map_err(mysql_err(format!("run {sql}")))?;
    Ok(rows.iter().map(row_to_map).collect())
}

/// The first column of the first row as text (`None` for no row or NULL).
pub async fn query_value(conn: &mut Conn, sql: &str) -> Result<Option<String>> {
    let row: Option<Row> = conn
        .query_first(sql)
        .await
        .map_err(mysql_err(format!("run {sql}")))?;
    Ok(row.and_then(|r| text(r.as_ref(0))))
}
