//! Every refusal of the API as a status and a JSON body with a stable `code`.
//!
//! Clients branch on `code` (it never changes wording) and show `message` to
//! people. Details a client may need to act on (the field, the missing right,
//! who finished an item and when) are fields of their own, not only words.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::engine::{EngineError, Millis};

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ApiErrorBody {
    /// Stable, machine-readable: `unauthenticated`, `invalid_token`,
    /// `permission_denied`, `invalid_serial`, `invalid_data`, `invalid_body`,
    /// `invalid_query`, `invalid_instance_id`, `item_not_found`,
    /// `instance_not_found`, `process_not_found`, `already_finished`,
    /// `item_cancelled`, `wrong_status`, `too_many_serials`, `body_too_large`,
    /// `unsupported_media_type`, `body_timeout`, `uri_too_long`,
    /// `headers_too_large`, `not_found`, `method_not_allowed`,
    /// `call_timeout`, `busy`, `storage_unavailable` (503: call again),
    /// `storage_failed` (500: a full disk, a damaged or read-only database;
    /// calling again fails until the server's operator acts), `internal`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The data field or body field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The process right that is missing, as the command line spells it
    /// (`server-event`, `start`, `view`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// The acting user (the token's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// When an item was finished or cancelled (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    /// Who finished or cancelled an item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
}

/// An error answer: a status and its body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Boxed: errors travel through every handler's `Result`, which should
    /// stay small.
    pub body: Box<ApiErrorBody>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: Box::new(ApiErrorBody {
                code,
                message: message.into(),
                field: None,
                right: None,
                process: None,
                user: None,
                serial: None,
                closed_at: None,
                closed_by: None,
            }),
        }
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "no bearer token: send the header `Authorization: Bearer <token>` (an administrator creates one with \
             `flowdesk token create USER`)",
        )
    }

    pub fn invalid_token() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "the bearer token is not valid or has been revoked")
    }

    pub fn invalid_body(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.body.field = Some(field.into());
        self
    }
}

pub fn rfc3339(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The stable `code` the API answers an engine error with, for the other
/// front ends' machine-readable output (`flowdesk finish --serials … --json`).
pub fn error_code(error: EngineError) -> &'static str {
    ApiError::from(error).body.code
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        let message = error.to_string();
        let refusal = |status, code| ApiError::new(status, code, message.clone());
        match error {
            EngineError::InvalidSerial(_) => refusal(StatusCode::BAD_REQUEST, "invalid_serial"),
            EngineError::ItemNotFound { serial } => {
                let mut answer = refusal(StatusCode::NOT_FOUND, "item_not_found");
                answer.body.serial = Some(serial);
                answer
            }
            EngineError::AlreadyFinished { serial, at, by } => {
                closed(refusal(StatusCode::CONFLICT, "already_finished"), serial, at, by)
            }
            EngineError::ItemCancelled { serial, at, by } => {
                closed(refusal(StatusCode::CONFLICT, "item_cancelled"), serial, at, by)
            }
            EngineError::InstanceNotFound { .. } => refusal(StatusCode::NOT_FOUND, "instance_not_found"),
            EngineError::ProcessNotFound { name } => {
                let mut answer = refusal(StatusCode::NOT_FOUND, "process_not_found");
                answer.body.process = Some(name);
                answer
            }
            EngineError::ActivityNotFound { .. } => refusal(StatusCode::NOT_FOUND, "activity_not_found"),
            EngineError::PermissionDenied { user, process, right } => {
                let mut answer = refusal(StatusCode::FORBIDDEN, "permission_denied");
                answer.body.right = Some(right.key().to_owned());
                answer.body.process = Some(process);
                answer.body.user = Some(user);
                answer
            }
            EngineError::InvalidData { field, .. } => {
                refusal(StatusCode::BAD_REQUEST, "invalid_data").with_field(field)
            }
            EngineError::InvalidFolio { .. } => refusal(StatusCode::BAD_REQUEST, "invalid_folio"),
            EngineError::Filter(_) => refusal(StatusCode::BAD_REQUEST, "invalid_filter"),
            EngineError::InvalidDefinition { .. } => refusal(StatusCode::BAD_REQUEST, "invalid_definition"),
            EngineError::WrongStatus { .. } => refusal(StatusCode::CONFLICT, "wrong_status"),
            EngineError::LastAdmin { .. } => refusal(StatusCode::CONFLICT, "last_admin"),
            // The engine's words name the database file and SQLite's error,
            // which are the operator's business, not a network client's:
            // they go to the server's standard error, naming the cause, and
            // the client gets the kind in plain words. Nothing was saved
            // either way; only a busy database or a write that met another
            // one is cured by calling again.
            EngineError::Storage(err) => {
                let (status, code, advice) = if err.is_retryable() {
                    (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "call again")
                } else {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "storage_failed",
                        "calling again will fail until the server's operator acts (its log names the cause)",
                    )
                };
                eprintln!("flowdesk api: answered {} {code} ({}): {message}", status.as_u16(), err.kind.key());
                ApiError::new(status, code, format!("{}; nothing was done, {advice}", err.kind.words()))
            }
            // The API cancels no read of its own: only a bug could bring
            // this here, and it is said as one.
            EngineError::Internal(_) | EngineError::Cancelled => {
                eprintln!("flowdesk api: {message}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the call failed unexpectedly and nothing it did was saved; please report it",
                )
            }
        }
    }
}

/// An item closed before this call: when and by whom, as fields.
fn closed(mut answer: ApiError, serial: String, at: Millis, by: String) -> ApiError {
    answer.body.serial = Some(serial);
    answer.body.closed_at = Some(rfc3339(at));
    answer.body.closed_by = Some(by);
    answer
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthenticated = self.status == StatusCode::UNAUTHORIZED;
        let retry = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut response = (self.status, axum::Json(*self.body)).into_response();
        if unauthenticated {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if retry {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{StorageError, StorageErrorKind};

    #[test]
    fn a_storage_failure_does_not_tell_a_client_where_the_database_is() {
        let busy = "/home/op/.local/share/flowdesk/flowdesk.db stayed busy: another program held a long write on it";
        let answer = ApiError::from(EngineError::Storage(StorageError::new(StorageErrorKind::Busy, busy)));
        assert_eq!((answer.status, answer.body.code), (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"));
        assert!(!answer.body.message.contains("/home/op"), "{}", answer.body.message);
        assert!(answer.body.message.contains("call again"), "{}", answer.body.message);

        let full = "the disk holding /home/op/.local/share/flowdesk/flowdesk.db is full";
        let answer = ApiError::from(EngineError::Storage(StorageError::new(StorageErrorKind::DiskFull, full)));
        assert!(!answer.body.message.contains("/home/op"), "{}", answer.body.message);

        let internal = ApiError::from(EngineError::Internal("row 7 of /srv/flowdesk.db: no such column".to_owned()));
        assert_eq!(internal.body.code, "internal");
        assert!(!internal.body.message.contains("/srv"), "{}", internal.body.message);
    }

    /// Only what calling again can cure is a 503 with `Retry-After`; a full
    /// disk or a damaged database is a 500 that says so in plain words.
    #[test]
    fn only_retryable_storage_errors_are_503_the_fatal_ones_are_500_storage_failed() {
        use StorageErrorKind::*;
        for (kind, status, code, words) in [
            (Busy, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "busy"),
            (Conflict, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "another"),
            (DiskFull, StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", "the disk is full"),
            (Corrupt, StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", "the database file is damaged"),
            (ReadOnly, StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", "read-only"),
            (Foreign, StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", "not a database"),
            (CannotOpen, StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", "cannot be opened"),
            (Io, StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", "the disk failed"),
            (Other, StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", "the database failed"),
        ] {
            let answer = ApiError::from(EngineError::Storage(StorageError::new(kind, "/srv/flowdesk.db: it failed")));
            assert_eq!((answer.status, answer.body.code), (status, code), "{kind:?}");
            assert!(answer.body.message.contains(words), "{kind:?}: {}", answer.body.message);
            assert!(!answer.body.message.contains("/srv"), "{kind:?}: {}", answer.body.message);
            let response = answer.into_response();
            assert_eq!(response.headers().contains_key(header::RETRY_AFTER), kind.is_retryable(), "{kind:?}");
        }
    }
}
