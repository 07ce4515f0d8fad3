//! Bearer token secrets: made here, shown once, and kept only as hashes.

use sha2::{Digest, Sha256};

use crate::engine::Millis;
use crate::runtime::Runtime;
use crate::store::NewApiToken;

/// Every token starts with this, so that a leaked one is recognisable (secret
/// scanners, logs) and a pasted user name is not mistaken for a token.
pub const TOKEN_PREFIX: &str = "fdk_";

/// Characters of the secret kept in clear to tell tokens apart in lists.
const SHOWN_CHARACTERS: usize = TOKEN_PREFIX.len() + 8;

/// A new token: the secret to hand to its user once, and what is stored.
#[derive(Debug)]
pub struct NewSecret {
    pub secret: String,
    pub hash: String,
    pub prefix: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the operating system gave no random bytes for a token: {0}")]
pub struct NoRandomness(String);

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    NoRandomness(#[from] NoRandomness),
    #[error(transparent)]
    Storage(#[from] crate::engine::EngineError),
}

/// A token just issued: its id, and the secret to hand over once.
#[derive(Debug)]
pub struct Issued {
    pub id: i64,
    pub secret: String,
}

/// Makes a token acting as `user` and saves its hash; the secret is only
/// in the answer.
pub fn issue(runtime: &Runtime, user: &str, label: &str, created_by: &str, at: Millis) -> Result<Issued, IssueError> {
    let made = generate()?;
    let id = runtime.create_token(&NewApiToken {
        user,
        label,
        hash: &made.hash,
        prefix: &made.prefix,
        created_at: at,
        created_by,
    })?;
    Ok(Issued { id, secret: made.secret })
}

/// Makes a token of 256 random bits from the operating system's generator.
/// A secret that strong needs no slow password hash: a single SHA-256 cannot
/// be searched backwards.
pub fn generate() -> Result<NewSecret, NoRandomness> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| NoRandomness(e.to_string()))?;
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    Ok(NewSecret { hash: hash(&secret), prefix: secret[..SHOWN_CHARACTERS].to_owned(), secret })
}

/// The stored form of a token.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_only_their_hash_identifies_them() {
        let first = generate().unwrap();
        let second = generate().unwrap();
        assert_ne!(first.secret, second.secret);
        assert!(first.secret.starts_with(TOKEN_PREFIX) && first.secret.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(first.hash, hash(&first.secret));
        assert_ne!(first.hash, first.secret);
        assert!(first.secret.starts_with(&first.prefix));
        assert!(!first.hash.contains(&first.secret[TOKEN_PREFIX.len()..]));
    }
}
