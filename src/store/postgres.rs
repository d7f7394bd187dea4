//! The store on PostgreSQL (issue 19): the cluster's system of record.

#[cfg(test)]
pub(crate) mod test_server;
