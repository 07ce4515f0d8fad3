//! The routes of API version 1 and their handlers.
//!
//! A handler authenticates, then makes the same engine call the command line
//! and the GUI make, on tokio's blocking pool: engine calls wait for SQLite
//! and must not hold an async worker. Routes and the OpenAPI document are
//! built together from the same annotated handlers (`utoipa-axum`), so the
//! document lists exactly what is served.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{
    BulkFinishRequest, BulkFinishResult, BulkFinishedDto, FinishRequest, FinishedDto, InstanceDto, ItemDto, ItemList,
    ItemQuery, ItemStatusFilter, OpenedItemDto, ProgressDto, StartRequest,
};
use super::error::{ApiError, ApiErrorBody};
use super::token;
use crate::engine::{BulkAction, BulkProgress, EngineError, FieldInput, ItemFilter, Outcome, Serial, Target};
use crate::runtime::{Runtime, RuntimeEngine};

/// How long clients and calls may take: a client that stalls, or a call that
/// waits too long, is answered or cut off rather than waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Time to send the request line and headers; then the connection is closed.
    pub header_timeout: Duration,
    /// Time to send the whole body, counted from the end of the headers
    /// however steadily it comes; then the call is answered `body_timeout`.
    pub body_timeout: Duration,
    /// Time for the call itself; then it is answered `call_timeout` and goes
    /// on. Engine calls are bounded by SQLite's busy timeout and script
    /// budgets; an HTTP request event on the way adds its own timeout.
    pub call_deadline: Duration,
    /// Engine calls running at once; more wait for a turn (within the call
    /// deadline). Each holds a thread of the blocking pool, and SQLite
    /// commits them in shared batches anyway, so a flood of clients gains
    /// nothing from more: it only costs memory and context switches.
    pub max_calls_in_flight: usize,
    /// The largest body accepted. A callback carries a few data fields;
    /// anything near this is a mistake or an attack.
    pub max_body_bytes: usize,
    /// The longest request target (path and query) taken, in bytes; a
    /// longer one is answered `uri_too_long`. Keep it under hyper's own
    /// limit of 64 KiB, past which hyper answers with an empty body.
    pub max_uri_bytes: usize,
    /// The most header bytes taken (each line's name, value and the four
    /// bytes around them); more is answered `headers_too_large`. Keep it
    /// well under hyper's read buffer (about 400 KiB), past which hyper
    /// answers with an empty body.
    pub max_header_bytes: usize,
    /// The most header lines taken; more is answered `headers_too_large`.
    /// hyper is let parse four times as many, so that a head a little past
    /// the limit still gets the JSON refusal.
    pub max_headers: usize,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            call_deadline: Duration::from_secs(60),
            max_calls_in_flight: 64,
            max_body_bytes: 256 * 1024,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

const DEFAULT_ITEM_LIMIT: usize = 100;
/// The most serials one bulk finish takes (`BulkFinishRequest::serials`'
/// documented `maxItems`): a thousand finishes take well under a second,
/// far inside the call deadline, and a body of them stays far under
/// [`ApiLimits::max_body_bytes`].
pub const MAX_BULK_SERIALS: usize = 1000;
const MAX_ITEM_LIMIT: usize = 1000;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    runtime: Arc<Runtime>,
    limits: ApiLimits,
    /// Turns for engine calls, [`ApiLimits::max_calls_in_flight`] of them.
    turns: Arc<tokio::sync::Semaphore>,
}

impl ApiState {
    pub fn new(runtime: Arc<Runtime>, limits: ApiLimits) -> ApiState {
        let turns = Arc::new(tokio::sync::Semaphore::new(limits.max_calls_in_flight.max(1)));
        ApiState { runtime, limits, turns }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flowdesk API",
        description = "Finish server items by serial (callbacks), start instances and read them. \
                       Every call acts as the user its bearer token belongs to, with that user's process rights. \
                       Errors are JSON bodies with a stable `code` and a `message`."
    ),
    modifiers(&BearerAuth),
    // Query parameters' schemas are not collected from the handlers as
    // bodies' are: without this, `status` would refer to a missing schema.
    components(schemas(ApiErrorBody, ItemStatusFilter))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        openapi.security =
            Some(vec![utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// The API's router, with the OpenAPI document it serves at
/// `/api/v1/openapi.json`.
pub fn router(state: ApiState) -> axum::Router {
    let limits = state.limits;
    let (api, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_items))
        .routes(routes!(open_item))
        .routes(routes!(finish_item))
        .routes(routes!(finish_items))
        .routes(routes!(start_instance))
        .routes(routes!(get_instance))
        .split_for_parts();
    document.paths.paths.insert("/openapi.json".to_owned(), openapi_path_item());
    bodies_may_be_left_out(&mut document);
    // A bulk finish without its list of serials is refused.
    if let Some(utoipa::openapi::RefOr::T(body)) = document
        .paths
        .paths
        .get_mut("/serveritems/finish")
        .and_then(|item| item.post.as_mut())
        .and_then(|operation| operation.request_body.as_mut())
    {
        body.required = Some(utoipa::openapi::Required::True);
    }
    document.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
    let document = Arc::new(document);
    let api = api
        .route("/openapi.json", axum::routing::get(move || serve_document(document.clone())))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    axum::Router::new()
        .nest("/api/v1", api)
        .fallback(no_such_endpoint)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // One deadline for the whole body, not one per piece of it: a client
        // trickling a byte at a time would otherwise hold its connection
        // (and a call's memory) for as long as it likes.
        .layer(tower_http::timeout::RequestBodyDeadlineLayer::new(limits.body_timeout))
        // Outermost: an oversized head is refused before any routing.
        .layer(axum::middleware::from_fn_with_state(limits, refuse_oversized_head))
}

/// Answers 414 or 431 with the API's JSON refusal when the request's target
/// or headers pass [`ApiLimits`]. hyper is configured to read heads well
/// past these limits (see `net::serve`), so that its own bare answers are
/// left for heads far beyond them.
async fn refuse_oversized_head(State(limits): State<ApiLimits>, request: Request, next: Next) -> Response {
    let uri = request.uri();
    let target_bytes = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, str::len);
    let refusal = if target_bytes > limits.max_uri_bytes {
        Some(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "the request target (path and query) is {target_bytes} bytes, more than the {} taken",
                limits.max_uri_bytes
            ),
        ))
    } else {
        let headers = request.headers();
        let header_bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
        if headers.len() > limits.max_headers {
            Some(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!("the request has {} header lines, more than the {} taken", headers.len(), limits.max_headers),
            ))
        } else if header_bytes > limits.max_header_bytes {
            Some(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!(
                    "the request's headers are {header_bytes} bytes, more than the {} KiB taken",
                    limits.max_header_bytes / 1024
                ),
            ))
        } else {
            None
        }
    };
    match refusal {
        None => next.run(request).await,
        Some(refusal) => {
            let mut response = refusal.into_response();
            // Whatever the client meant to send next is not worth reading.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// Every body this API takes may be left out: an empty body reads as an
/// empty object (`json_body`). utoipa marks a body required unless its type
/// is an `Option`, which would also document `null` as a body, and `null`
/// is refused.
fn bodies_may_be_left_out(document: &mut utoipa::openapi::OpenApi) {
    for item in document.paths.paths.values_mut() {
        for operation in [&mut item.post, &mut item.put, &mut item.patch].into_iter().flatten() {
            if let Some(utoipa::openapi::RefOr::T(body)) = operation.request_body.as_mut() {
                body.required = Some(utoipa::openapi::Required::False);
            }
        }
    }
}

/// The document describes itself, so clients find it listed too.
fn openapi_path_item() -> utoipa::openapi::PathItem {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder};
    use utoipa::openapi::{ResponseBuilder, ResponsesBuilder};
    let operation = OperationBuilder::new()
        .operation_id(Some("openapi"))
        .summary(Some("This OpenAPI document"))
        .security(utoipa::openapi::security::SecurityRequirement::default())
        .responses(
            ResponsesBuilder::new()
                .response("200", ResponseBuilder::new().description("The OpenAPI 3.1 document of this API")),
        )
        .build();
    utoipa::openapi::PathItem::new(HttpMethod::Get, operation)
}

async fn serve_document(document: Arc<utoipa::openapi::OpenApi>) -> Response {
    Json(document.as_ref().clone()).into_response()
}

async fn no_such_endpoint(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no endpoint {method} {}: the API is described at /api/v1/openapi.json", uri.path()),
    )
}

/// `OriginalUri`: inside the nested router `Uri` has lost its `/api/v1`
/// prefix, and the message should name the path the client called.
async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}: the API is described at /api/v1/openapi.json", uri.path()),
    )
}

impl ApiState {
    /// Authenticates the caller by its bearer token, then runs `work` as the
    /// token's user on the blocking pool, answering within
    /// [`ApiLimits::call_deadline`]. Handlers judge their input inside `work`,
    /// so that a caller without a valid token hears 401 whatever it sent.
    async fn call<T: Send + 'static>(
        &self,
        headers: &HeaderMap,
        work: impl FnOnce(&RuntimeEngine, &str) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let presented = bearer_token(headers)?;
        let deadline = self.limits.call_deadline;
        let started = tokio::time::Instant::now();
        let turn = match tokio::time::timeout(deadline, self.turns.clone().acquire_owned()).await {
            Ok(Ok(turn)) => turn,
            // Nothing was done: unlike a call past its deadline, this one can
            // simply be made again.
            _ => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!(
                        "{} calls were already running for {} s; nothing was done, call again",
                        self.limits.max_calls_in_flight,
                        deadline.as_secs_f64()
                    ),
                ));
            }
        };
        let runtime = self.runtime.clone();
        let task = tokio::task::spawn_blocking(move || {
            // The turn is held until the work ends, even past the deadline.
            let _turn = turn;
            let user = runtime.token_user(&token::hash(&presented))?.ok_or_else(ApiError::invalid_token)?;
            work(runtime.engine(), &user)
        });
        match tokio::time::timeout_at(started + deadline, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_panicked)) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the call failed unexpectedly and nothing it did was saved; please report it",
            )),
            Err(_elapsed) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "call_timeout",
                format!(
                    "the call did not end within {} s (an HTTP request event may be waiting for its answer); it \
                     goes on and its outcome will show on the instance",
                    deadline.as_secs_f64()
                ),
            )),
        }
    }
}

/// The token in `Authorization: Bearer <token>`.
fn bearer_token(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Err(ApiError::unauthenticated()) };
    let value = value.to_str().map_err(|_| ApiError::invalid_token())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(ApiError::unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthenticated());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::unauthenticated());
    }
    Ok(token.to_owned())
}

/// A JSON object body; an empty body is an empty object, so a finish
/// without data needs none.
fn json_body<T: DeserializeOwned>(
    limits: &ApiLimits,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {} KiB", limits.max_body_bytes / 1024),
            )
        } else if caused_by::<tower_http::timeout::TimeoutError>(&rejection) {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the body did not arrive within {} s", limits.body_timeout.as_secs_f64()),
            )
        } else {
            ApiError::invalid_body(format!("the body could not be read: {}", rejection.body_text()))
        }
    })?;
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let is_json = content_type.to_str().ok().and_then(|t| t.split(';').next()).is_some_and(|t| {
            let t = t.trim().to_ascii_lowercase();
            t == "application/json" || t.ends_with("+json")
        });
        if !is_json && !body.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
    }
    // .NET and PowerShell clients often start a UTF-8 body with a byte order
    // mark, which RFC 8259 lets a reader ignore.
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&body);
    let text: &[u8] = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => b"{}",
        Some(b'{') => body,
        // serde reads a struct from an array too, by position: `["PO-1", {}]`
        // would start an instance with folio PO-1. A body names its members.
        Some(_) => {
            return Err(ApiError::invalid_body(
                "the body must be a JSON object, such as {\"data\": {...}}; an array or a single value is not taken",
            ));
        }
    };
    serde_json::from_slice(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::invalid_body(format!("the body is not what this call takes: {e}"))
        }
        _ => ApiError::invalid_body(format!("the body is not valid JSON: {e}")),
    })
}

/// Whether `error` or one of its causes is an `E`.
fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<E>() {
            return true;
        }
        cause = error.source();
    }
    false
}

fn field_inputs(data: super::dto::DataInput) -> Vec<(String, FieldInput)> {
    data.into_iter().map(|(name, value)| (name, FieldInput::Json(value))).collect()
}

/// The serial in a path. axum answers a segment that is not UTF-8 once
/// percent-decoded (`%FF`) in plain text; a client is owed the JSON refusal
/// every other malformed serial gets.
fn path_serial(serial: Result<Path<String>, PathRejection>) -> Result<Serial, ApiError> {
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_serial", message);
    let Ok(Path(serial)) = serial else {
        return Err(invalid(
            "the serial is not a serial number: it is not UTF-8 text once percent-decoded (a serial looks like 1042_7)"
                .to_owned(),
        ));
    };
    serial_as_documented(&serial).map_err(invalid)
}

/// The largest part of a serial the document's pattern allows (18 digits):
/// every such number fits an `i64`, so the pattern alone tells a client
/// whether a serial is well formed.
const SERIAL_PART_BOUND: i64 = 1_000_000_000_000_000_000;

/// A serial written exactly as the OpenAPI document's pattern
/// `^[1-9][0-9]{0,17}_[1-9][0-9]{0,17}$` has it. The engine also reads
/// `01_2` or ` 1_2` (people paste serials); over HTTP one item has one
/// spelling, and a client's validator and the server agree on it.
fn serial_as_documented(text: &str) -> Result<Serial, String> {
    let serial: Serial = text.parse().map_err(|e: crate::engine::InvalidSerial| e.to_string())?;
    let in_range = serial.instance_id < SERIAL_PART_BOUND && serial.destination_id < SERIAL_PART_BOUND;
    if in_range && serial.to_string() == text {
        return Ok(serial);
    }
    let shown: String = text.chars().take(40).collect();
    Err(format!(
        "`{shown}` is not a serial number as this API takes it: two whole numbers from 1, of at most 18 digits, \
         without signs, spaces or leading zeros, joined by one underscore (a serial looks like 1042_7)"
    ))
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("the query string is not valid: {}", rejection.body_text()),
        )
    })
}

/// The refusals routes answer alike, each documented once: a route's
/// `responses(...)` names these beside its own.
struct Unauthenticated;
struct BodyRefusals;
struct StorageRefusals;

impl utoipa::IntoResponses for Unauthenticated {
    fn responses() -> ResponseMap {
        refusals(&[("401", "No valid bearer token")])
    }
}

/// What `json_body` refuses.
impl utoipa::IntoResponses for BodyRefusals {
    fn responses() -> ResponseMap {
        refusals(&[
            ("408", "The body stopped coming (`body_timeout`)"),
            ("413", "The body is too large (`body_too_large`)"),
            ("415", "The body is not JSON (`unsupported_media_type`)"),
        ])
    }
}

/// A storage error as `error.rs` maps it, and the turns of `ApiState::call`.
impl utoipa::IntoResponses for StorageRefusals {
    fn responses() -> ResponseMap {
        refusals(&[
            (
                "500",
                "The database failed in a way calling again does not cure: a full disk, a damaged or read-only \
                 database file (`storage_failed`, the server's log names the cause), or the call failed \
                 unexpectedly (`internal`); nothing was saved",
            ),
            (
                "503",
                "The database was busy, the write met another one, or every turn was taken; nothing was done, \
                 call again (`storage_unavailable`, `busy`)",
            ),
        ])
    }
}

/// Responses by status, as `utoipa::IntoResponses` gives them.
type ResponseMap = std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>>;

/// Responses by status and description, each with an [`ApiErrorBody`].
fn refusals(list: &[(&str, &str)]) -> ResponseMap {
    let body = Content::new(Some(Ref::from_schema_name("ApiErrorBody")));
    list.iter()
        .map(|(status, description)| {
            let response = ResponseBuilder::new().description(*description).content("application/json", body.clone());
            ((*status).to_owned(), RefOr::T(response.build()))
        })
        .collect()
}

/// List server items the token's user may see.
#[utoipa::path(
    get,
    path = "/serveritems",
    params(ItemQuery),
    responses(
        (status = 200, description = "Server items, oldest first (by creation time, then serial); `next_after` is the cursor of the next page", body = ItemList),
        (status = 400, description = "A query parameter is not valid, or `after` names no server item (`invalid_query`, naming `field`)", body = ApiErrorBody),
        Unauthenticated,
        StorageRefusals,
        (status = 504, description = "The call ran past the deadline (`call_timeout`)", body = ApiErrorBody),
    ),
    tag = "server items"
)]
async fn list_items(
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Result<Query<ItemQuery>, QueryRejection>,
) -> Result<Json<ItemList>, ApiError> {
    // Judged once the caller is known: without a valid token, 401 whatever
    // was asked.
    let filter = query(params).and_then(item_filter);
    let (items, more) = state
        .call(&headers, move |engine, user| {
            let filter = filter?;
            let limit = filter.limit;
            // One more than asked tells whether a next page exists.
            let mut items = engine.items(user, &ItemFilter { limit: limit + 1, ..filter }).map_err(|e| match e {
                EngineError::ItemNotFound { serial } => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("after names no server item: there is no {serial} (pass a page's `next_after`)"),
                )
                .with_field("after"),
                other => ApiError::from(other),
            })?;
            let more = items.len() > limit;
            items.truncate(limit);
            Ok((items, more))
        })
        .await?;
    let next_after = if more { items.last().map(|item| item.serial.to_string()) } else { None };
    Ok(Json(ItemList { items: items.iter().map(ItemDto::from).collect(), next_after }))
}

/// The engine's filter for a list call, or the parameter at fault.
fn item_filter(params: ItemQuery) -> Result<ItemFilter, ApiError> {
    let invalid = |field: &str, message: String| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message).with_field(field)
    };
    let limit = params.limit.unwrap_or(DEFAULT_ITEM_LIMIT);
    if limit == 0 || limit > MAX_ITEM_LIMIT {
        return Err(invalid("limit", format!("limit must be between 1 and {MAX_ITEM_LIMIT}")));
    }
    let after = match params.after {
        Some(after) => Some(serial_as_documented(&after).map_err(|e| invalid("after", format!("after: {e}")))?),
        None => None,
    };
    Ok(ItemFilter {
        include_closed: params.status == Some(ItemStatusFilter::All),
        process: params.process,
        instance_id: params.instance_id,
        search: None,
        newest_first: false,
        by_due: false,
        // Closed items keep their place among pending ones, so that a page
        // boundary does not move when an item closes between two pages.
        by_age_only: true,
        after,
        overdue: params.overdue.unwrap_or(false),
        // The engine judges what is overdue by its own clock.
        now: 0,
        limit,
    })
}

/// Open a server item: the item, its instance and the instance's data fields.
/// Needs the process's Server Event right.
#[utoipa::path(
    get,
    path = "/serveritems/{serial}",
    params(("serial" = String, Path, description = "`<instance id>_<activity instance destination id>`", pattern = "^[1-9][0-9]{0,17}_[1-9][0-9]{0,17}$", example = "1042_7")),
    responses(
        (status = 200, description = "The item, its instance, and the instance's data fields with their types", body = OpenedItemDto),
        (status = 400, description = "Malformed serial (`invalid_serial`)", body = ApiErrorBody),
        Unauthenticated,
        (status = 403, description = "The user lacks the Server Event right (`permission_denied`)", body = ApiErrorBody),
        (status = 404, description = "No such server item (`item_not_found`)", body = ApiErrorBody),
        StorageRefusals,
        (status = 504, description = "The call ran past the deadline (`call_timeout`)", body = ApiErrorBody),
    ),
    tag = "server items"
)]
async fn open_item(
    State(state): State<ApiState>,
    headers: HeaderMap,
    serial: Result<Path<String>, PathRejection>,
) -> Result<Json<OpenedItemDto>, ApiError> {
    let serial = path_serial(serial);
    let opened = state.call(&headers, move |engine, user| Ok(engine.open_server_item(user, serial?)?)).await?;
    Ok(Json(OpenedItemDto::from(&opened)))
}

/// Finish a server item (a callback), setting data fields first. The answer
/// comes once the finish is durably committed. Needs Server Event.
#[utoipa::path(
    post,
    path = "/serveritems/{serial}/finish",
    params(("serial" = String, Path, description = "`<instance id>_<activity instance destination id>`", pattern = "^[1-9][0-9]{0,17}_[1-9][0-9]{0,17}$", example = "1042_7")),
    request_body(content = FinishRequest, description = "May be left out (an empty body): no data fields to set"),
    responses(
        (status = 200, description = "Finished; the instance went on to its next wait or completed", body = FinishedDto),
        (status = 400, description = "Malformed serial (`invalid_serial`), unknown field or wrong type (`invalid_data`, naming `field`), or a body that is not a JSON object (`invalid_body`)", body = ApiErrorBody),
        Unauthenticated,
        (status = 403, description = "The user lacks the Server Event right (`permission_denied`)", body = ApiErrorBody),
        (status = 404, description = "No such server item (`item_not_found`)", body = ApiErrorBody),
        (status = 409, description = "Already finished or cancelled (`already_finished`, `item_cancelled`), with when and by whom", body = ApiErrorBody),
        BodyRefusals,
        StorageRefusals,
        (status = 504, description = "The call ran past the deadline and goes on (`call_timeout`)", body = ApiErrorBody),
    ),
    tag = "server items"
)]
async fn finish_item(
    State(state): State<ApiState>,
    headers: HeaderMap,
    serial: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FinishedDto>, ApiError> {
    // The serial and the body are looked at once the caller is known: a
    // caller without a valid token hears 401 whatever it sent.
    let serial = path_serial(serial);
    let (limits, content) = (state.limits, headers.clone());
    let finished = state
        .call(&headers, move |engine, user| {
            let serial = serial?;
            let request: FinishRequest = json_body(&limits, &content, body)?;
            Ok(engine.finish(user, serial, &field_inputs(request.data))?)
        })
        .await?;
    Ok(Json(FinishedDto {
        serial: finished.serial,
        applied: finished.applied,
        instance: ProgressDto::from(&finished.progress),
    }))
}

/// Finish many server items (callbacks) in one call, setting the same data
/// fields on each. Each serial is finished as its own finish call would be,
/// in its own transaction, and answered in its place with that call's
/// status and code; the answer comes once every finish done is durably
/// committed. Needs Server Event on each item's process.
#[utoipa::path(
    post,
    path = "/serveritems/finish",
    request_body(content = BulkFinishRequest, description = "The serials (at most 1000) and the data fields to set"),
    responses(
        (status = 200, description = "Each serial answered in its place: finished (200) or refused with the single finish's status and code", body = BulkFinishedDto),
        (status = 400, description = "A body that is not a JSON object with `serials` (`invalid_body`), or more serials than one call takes (`too_many_serials`, naming `field`)", body = ApiErrorBody),
        Unauthenticated,
        BodyRefusals,
        (status = 500, description = "The call failed unexpectedly (`internal`)", body = ApiErrorBody),
        (status = 503, description = "Every turn was taken; nothing was done, call again (`busy`)", body = ApiErrorBody),
        (status = 504, description = "The call ran past the deadline and goes on (`call_timeout`)", body = ApiErrorBody),
    ),
    tag = "server items"
)]
async fn finish_items(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BulkFinishedDto>, ApiError> {
    let (limits, content) = (state.limits, headers.clone());
    let answer = state
        .call(&headers, move |engine, user| {
            let request: BulkFinishRequest = json_body(&limits, &content, body)?;
            if request.serials.len() > MAX_BULK_SERIALS {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "too_many_serials",
                    format!(
                        "the call names {} serials, more than the {MAX_BULK_SERIALS} one call takes; send them in \
                         several calls",
                        request.serials.len()
                    ),
                )
                .with_field("serials"));
            }
            // Each serial once, in the order sent; text that is no serial
            // is answered in its place, as the single finish answers it.
            let mut sent: Vec<(String, Result<Serial, EngineError>)> = Vec::new();
            for text in request.serials {
                if sent.iter().all(|(seen, _)| *seen != text) {
                    let parsed = text.parse::<Serial>().map_err(EngineError::from);
                    sent.push((text, parsed));
                }
            }
            let targets: Vec<Target> =
                sent.iter().filter_map(|(_, s)| s.as_ref().ok().map(|s| Target::Item(*s))).collect();
            let action = BulkAction::Finish { data: field_inputs(request.data) };
            let report = engine.bulk(user, &action, &targets, &BulkProgress::new());
            let mut outcomes: std::collections::HashMap<Serial, Outcome> = report
                .outcomes
                .into_iter()
                .filter_map(|(target, outcome)| match target {
                    Target::Item(serial) => Some((serial, outcome)),
                    Target::Instance(_) => None,
                })
                .collect();
            let results: Vec<BulkFinishResult> = sent
                .into_iter()
                .map(|(text, parsed)| {
                    let outcome = match parsed {
                        Ok(serial) => outcomes.remove(&serial).unwrap_or(Outcome::NotReached),
                        Err(err) => Outcome::Refused(err),
                    };
                    bulk_result(text, outcome)
                })
                .collect();
            let count = |of: fn(u16) -> bool| results.iter().filter(|r| of(r.status)).count();
            Ok(BulkFinishedDto {
                done: count(|status| status == 200),
                refused: count(|status| (400..500).contains(&status)),
                failed: count(|status| status >= 500),
                results,
            })
        })
        .await?;
    Ok(Json(answer))
}

/// One serial's answer in a bulk finish: what its single finish answers.
fn bulk_result(serial: String, outcome: Outcome) -> BulkFinishResult {
    let refused = |error: ApiError| BulkFinishResult {
        serial: serial.clone(),
        status: error.status.as_u16(),
        applied: None,
        instance: None,
        error: Some(*error.body),
    };
    match outcome {
        Outcome::Done { applied, progress } => BulkFinishResult {
            serial: serial.clone(),
            status: StatusCode::OK.as_u16(),
            applied: Some(applied),
            instance: Some(ProgressDto::from(&progress)),
            error: None,
        },
        Outcome::Refused(err) | Outcome::Failed(err) => refused(ApiError::from(err)),
        // No bulk finish of the API is cancelled: a serial not reached is
        // a bug to say, and calling again for it is safe.
        Outcome::NotReached => refused(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "this serial was not reached; nothing of it was done, call again",
        )),
    }
}

/// Start an instance of a process's default version and run it to its first
/// wait. Needs the process's Start right.
#[utoipa::path(
    post,
    path = "/processes/{name}/instances",
    params(("name" = String, Path, description = "The process name")),
    request_body(content = StartRequest, description = "May be left out (an empty body): no folio, default data"),
    responses(
        (status = 201, description = "Started; `Location` names the new instance", body = ProgressDto),
        (status = 400, description = "Unknown field or wrong type (`invalid_data`, naming `field`), a folio with a control character other than tab and line break (`invalid_folio`), or a body that is not a JSON object (`invalid_body`)", body = ApiErrorBody),
        Unauthenticated,
        (status = 403, description = "The user lacks the Start right (`permission_denied`)", body = ApiErrorBody),
        (status = 404, description = "No such process (`process_not_found`)", body = ApiErrorBody),
        BodyRefusals,
        StorageRefusals,
        (status = 504, description = "The start ran past the deadline (an HTTP request event waiting on its answer) and goes on (`call_timeout`)", body = ApiErrorBody),
    ),
    tag = "instances"
)]
async fn start_instance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // No process can be named with text that is not UTF-8.
    let name = name.map(|Path(name)| name).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "process_not_found",
            "no process has this name: it is not UTF-8 text once percent-decoded",
        )
    });
    let (limits, content) = (state.limits, headers.clone());
    let progress = state
        .call(&headers, move |engine, user| {
            let name = name?;
            let request: StartRequest = json_body(&limits, &content, body)?;
            Ok(engine.start(user, &name, &request.folio, &field_inputs(request.data))?)
        })
        .await?;
    let location = format!("/api/v1/instances/{}", progress.instance_id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(ProgressDto::from(&progress))).into_response())
}

/// One instance: status, data fields, pending items, error and audit trail.
/// Needs View (or View Participate on an instance the user took part in).
#[utoipa::path(
    get,
    path = "/instances/{id}",
    params(("id" = i64, Path, description = "The instance id")),
    responses(
        (status = 200, description = "The instance with its data fields, pending server items, error and audit trail", body = InstanceDto),
        (status = 400, description = "The id is not a number (`invalid_instance_id`)", body = ApiErrorBody),
        Unauthenticated,
        (status = 403, description = "The user may not see it (`permission_denied`)", body = ApiErrorBody),
        (status = 404, description = "No such instance (`instance_not_found`)", body = ApiErrorBody),
        StorageRefusals,
        (status = 504, description = "The call ran past the deadline (`call_timeout`)", body = ApiErrorBody),
    ),
    tag = "instances"
)]
async fn get_instance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<InstanceDto>, ApiError> {
    let not_an_id = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_instance_id", message);
    let id: Result<i64, ApiError> = match id {
        Ok(Path(id)) => id.parse().map_err(|_| not_an_id(format!("`{id}` is not an instance id (a number)"))),
        Err(_) => {
            Err(not_an_id("the id is not an instance id (a number): it is not UTF-8 text once percent-decoded".into()))
        }
    };
    // Judged once the caller is known, as every route's input.
    let detail = state.call(&headers, move |engine, user| Ok(engine.instance(user, id?)?)).await?;
    Ok(Json(InstanceDto::from(&detail)))
}
