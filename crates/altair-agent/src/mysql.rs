//! Connecting to MySQL: always over TCP, always bounded in time, and never with the
//! password in an error.

use std::time::Duration;

use altair_svc::Secret;
use altair_svc::mysql_tls::MysqlTlsLoaded;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};

/// Connection options for `host:port` as `user`, secured as `tls` says.
pub fn opts(host: &str, port: u16, user: &str, password: &Secret, tls: &MysqlTlsLoaded) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(host.to_owned())
        .tcp_port(port)
        .user(Some(user.to_owned()))
        .pass(Some(password.expose().to_owned()))
        .prefer_socket(false)
        .stmt_cache_size(0)
        .ssl_opts(tls.ssl_opts())
        .into()
}

/// Connects within `timeout`; the error is a sentence without credentials.
pub async fn connect(opts: Opts, timeout: Duration) -> Result<Conn, String> {
    match tokio::time::timeout(timeout, Conn::new(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no handshake within {} ms", timeout.as_millis())),
    }
}

/// A MySQL error as text. Server errors keep their code and message (which never hold
/// our password); driver errors are summarised.
pub fn describe(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("server error {}: {}", s.code, s.message),
        // The driver's own text repeats its prefix ("Input/output error: Input/output
        // error: …"): name the cause once.
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => format!("I/O error: {io}"),
        mysql_async::Error::Driver(d) => format!("driver error: {d}"),
        other => other.to_string(),
    }
}

/// Every row of `sql` as (column, text) pairs.
pub async fn rows(
    conn: &mut Conn,
    sql: &str,
) -> Result<Vec<Vec<(String, Option<String>)>>, String> {
    let rows: Vec<Row> = conn.query(sql).await.map_err(|e| describe(&e))?;
    Ok(rows
        .iter()
        .map(|row| {
            row.columns_ref()
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name_str().into_owned(), text(row.as_ref(i))))
                .collect()
        })
        .collect())
}

pub fn text(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::NULL) => None,
        Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(Value::Int(i)) => Some(i.to_string()),
        Some(Value::UInt(u)) => Some(u.to_string()),
        Some(other) => Some(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}

/// Field `name` of a row from `rows`.
pub fn field<'a>(row: &'a [(String, Option<String>)], name: &str) -> Option<&'a str> {
    row.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_deref())
}
