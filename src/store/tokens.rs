//! Bearer tokens of the HTTP API, kept as hashes.
//!
//! The store never sees a secret: callers hand it the token's hash (see
//! `net::token`), and look a caller up by the hash of what it presented.
//! Managing tokens is a local operation on the database file, like granting
//! rights from the command line: whoever can write the file can do it.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{SqliteStore, describe};
use crate::engine::{EngineError, Millis};

/// A token as listed: everything but its secret, which is not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    /// The user the token acts as.
    pub user: String,
    pub label: String,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    pub created_at: Millis,
    pub created_by: String,
    pub revoked_at: Option<Millis>,
    pub revoked_by: Option<String>,
}

/// A token to save: its hash, never its secret.
#[derive(Debug, Clone)]
pub struct NewApiToken<'a> {
    pub user: &'a str,
    pub label: &'a str,
    pub hash: &'a str,
    pub prefix: &'a str,
    pub created_at: Millis,
    pub created_by: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token {id} not found")]
    NotFound { id: i64 },
    #[error("token {id} was already revoked at {} by {by}", crate::engine::format_time(*at))]
    AlreadyRevoked { id: i64, at: Millis, by: String },
    #[error(transparent)]
    Storage(#[from] EngineError),
}

impl SqliteStore {
    /// Saves a new token; returns its id.
    pub fn create_token(&self, token: &NewApiToken<'_>) -> Result<i64, EngineError> {
        self.writes.write(self.writes.coming(), |tx| {
            tx.connection()
                .prepare_cached(
                    "INSERT INTO api_tokens (user, label, hash, prefix, created_at, created_by) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        token.user,
                        token.label,
                        token.hash,
                        token.prefix,
                        token.created_at,
                        token.created_by
                    ])
                })
                .map_err(|e| describe(&e, &self.path))?;
            tx.mark_written();
            Ok(tx.connection().last_insert_rowid())
        })
    }

    /// Every token, revoked ones included, oldest first.
    pub fn tokens(&self) -> Result<Vec<ApiToken>, EngineError> {
        self.with_reader(|connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT id, user, label, prefix, created_at, created_by, revoked_at, revoked_by \
                     FROM api_tokens ORDER BY id",
                )
                .map_err(|e| describe(&e, &self.path))?;
            let rows = statement
                .query_map([], |row| {
                    Ok(ApiToken {
                        id: row.get(0)?,
                        user: row.get(1)?,
                        label: row.get(2)?,
                        prefix: row.get(3)?,
                        created_at: row.get(4)?,
                        created_by: row.get(5)?,
                        revoked_at: row.get(6)?,
                        revoked_by: row.get(7)?,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| describe(&e, &self.path))?;
            Ok(rows)
        })
    }

    /// Revokes a token: it stops working at once, and stays listed.
    pub fn revoke_token(&self, id: i64, by: &str, at: Millis) -> Result<(), TokenError> {
        self.writes.write(self.writes.coming(), |tx| {
            let current: Option<(Option<Millis>, Option<String>)> = tx
                .connection()
                .query_row("SELECT revoked_at, revoked_by FROM api_tokens WHERE id = ?1", [id], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()
                .map_err(|e| describe(&e, &self.path))?;
            match current {
                None => Ok(Err(TokenError::NotFound { id })),
                Some((Some(at), by)) => Ok(Err(TokenError::AlreadyRevoked { id, at, by: by.unwrap_or_default() })),
                Some((None, _)) => {
                    tx.connection()
                        .execute(
                            "UPDATE api_tokens SET revoked_at = ?1, revoked_by = ?2 WHERE id = ?3",
                            params![at, by, id],
                        )
                        .map_err(|e| describe(&e, &self.path))?;
                    tx.mark_written();
                    Ok(Ok(()))
                }
            }
        })?
    }

    /// The user a live token acts as, looked up by the token's hash.
    pub fn token_user(&self, hash: &str) -> Result<Option<String>, EngineError> {
        self.with_reader(|connection| {
            connection
                .prepare_cached("SELECT user FROM api_tokens WHERE hash = ?1 AND revoked_at IS NULL")
                .and_then(|mut statement| statement.query_row([hash], |row| row.get(0)).optional())
                .map_err(|e| describe(&e, &self.path))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn new_token<'a>(user: &'a str, hash: &'a str) -> NewApiToken<'a> {
        NewApiToken { user, label: "billing", hash, prefix: "fdk_1234", created_at: 1_000, created_by: "admin" }
    }

    #[test]
    fn a_token_is_found_by_its_hash_until_it_is_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let id = store.create_token(&new_token("biztalk", "hash-1")).unwrap();
        store.create_token(&new_token("alice", "hash-2")).unwrap();
        assert_eq!(store.token_user("hash-1").unwrap().as_deref(), Some("biztalk"));
        assert_eq!(store.token_user("unknown").unwrap(), None);

        store.revoke_token(id, "admin", 2_000).unwrap();
        assert_eq!(store.token_user("hash-1").unwrap(), None);
        assert_eq!(store.token_user("hash-2").unwrap().as_deref(), Some("alice"));
        let listed = store.tokens().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!((listed[0].revoked_at, listed[0].revoked_by.as_deref()), (Some(2_000), Some("admin")));

        let again = store.revoke_token(id, "admin", 3_000).unwrap_err();
        assert!(matches!(again, TokenError::AlreadyRevoked { at: 2_000, .. }), "{again}");
        assert!(matches!(store.revoke_token(99, "admin", 3_000), Err(TokenError::NotFound { id: 99 })));
    }

    #[test]
    fn the_same_hash_cannot_be_saved_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        store.create_token(&new_token("biztalk", "same")).unwrap();
        assert!(store.create_token(&new_token("alice", "same")).is_err());
        assert_eq!(store.token_user("same").unwrap().as_deref(), Some("biztalk"));
    }
}
