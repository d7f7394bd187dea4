//! PostgreSQL's rows as SQLite values, so that `codec.rs` decodes both backends' rows.

use postgres::types::Type;
use rusqlite::types::{FromSql, FromSqlError, Value, ValueRef};

use super::super::codec::Cells;
use super::super::StoreError;
use super::Database;

/// One row's cells, converted.
pub(crate) struct PgRow(Vec<Value>);

impl PgRow {
    /// Converts `row`: integers, booleans (as 0 and 1, as SQLite stores them), text, bytes,
    /// and JSON (as its text).
    pub(crate) fn of(row: &postgres::Row, db: &Database) -> Result<PgRow, StoreError> {
        let err = |e| db.error(e);
        let mut cells = Vec::with_capacity(row.len());
        for (i, column) in row.columns().iter().enumerate() {
            let ty = column.type_();
            let value = if *ty == Type::INT8 {
                row.try_get::<_, Option<i64>>(i).map_err(err)?.map(Value::Integer)
            } else if *ty == Type::INT4 {
                row.try_get::<_, Option<i32>>(i)
                    .map_err(err)?
                    .map(|v| Value::Integer(v.into()))
            } else if *ty == Type::BOOL {
                row.try_get::<_, Option<bool>>(i)
                    .map_err(err)?
                    .map(|v| Value::Integer(v.into()))
            } else if *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::NAME {
                row.try_get::<_, Option<String>>(i).map_err(err)?.map(Value::Text)
            } else if *ty == Type::BYTEA {
                row.try_get::<_, Option<Vec<u8>>>(i)
                    .map_err(err)?
                    .map(Value::Blob)
            } else if *ty == Type::JSONB || *ty == Type::JSON {
                row.try_get::<_, Option<serde_json::Value>>(i)
                    .map_err(err)?
                    .map(|v| Value::Text(v.to_string()))
            } else {
                return Err(StoreError::Corrupt {
                    path: db.name(),
                    what: format!(
                        "column {} has type {ty}, which the store does not read",
                        column.name()
                    ),
                });
            };
            cells.push(value.unwrap_or(Value::Null));
        }
        Ok(PgRow(cells))
    }

    /// Every row of `rows`, decoded by `decode`.
    pub(crate) fn decode_all<T>(
        rows: &[postgres::Row],
        db: &Database,
        decode: impl Fn(&PgRow) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        rows.iter()
            .map(|row| decode(&PgRow::of(row, db)?).map_err(|e| db.corrupt(e)))
            .collect()
    }
}

impl Cells for PgRow {
    fn cell<T: FromSql>(&self, idx: usize) -> rusqlite::Result<T> {
        let value = self.0.get(idx).ok_or(rusqlite::Error::InvalidColumnIndex(idx))?;
        T::column_result(ValueRef::from(value)).map_err(|e| {
            let ty = ValueRef::from(value).data_type();
            match e {
                FromSqlError::Other(source) => rusqlite::Error::FromSqlConversionFailure(idx, ty, source),
                other => rusqlite::Error::FromSqlConversionFailure(idx, ty, Box::new(other)),
            }
        })
    }
}
