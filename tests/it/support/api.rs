//! An HTTP API on a temporary database, and a small client for it.

use std::sync::Arc;
use std::time::Duration;

use flowdesk::engine::Engine;
use flowdesk::model::Right;
use flowdesk::net::{ApiLimits, RunningApi};
use flowdesk::store::SqliteStore;
use serde_json::Value as Json;

/// An engine on a temporary database with the API listening on a free
/// loopback port. `admin` deployed the callback sample; `biztalk` holds
/// Start, View and Server Event on it; `intruder` holds nothing.
pub struct ApiFixture {
    pub fixture: super::Fixture,
    pub engine: Arc<Engine<SqliteStore>>,
    pub api: Option<RunningApi>,
    agent: ureq::Agent,
}

/// An answer: status and JSON body (`Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Json,
    pub location: Option<String>,
}

impl Answer {
    /// The error `code` of an error answer.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl ApiFixture {
    pub fn start() -> ApiFixture {
        ApiFixture::start_with(super::Fixture::new())
    }

    /// Serves `fixture`'s database through a second engine, as `flowdesk
    /// serve` next to the test's own engine would.
    pub fn start_with(fixture: super::Fixture) -> ApiFixture {
        ApiFixture::start_limited(fixture, ApiLimits::default())
    }

    pub fn start_limited(fixture: super::Fixture, limits: ApiLimits) -> ApiFixture {
        fixture.deploy_sample("admin", "callback.process.json");
        fixture.engine.grant("admin", "callback", "biztalk", &[Right::Start, Right::View, Right::ServerEvent]).unwrap();
        let engine = Arc::new(fixture.second_engine());
        let api = RunningApi::start_with(engine.clone(), "127.0.0.1:0".parse().unwrap(), limits).unwrap();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        ApiFixture { fixture, engine, api: Some(api), agent }
    }

    pub fn base_url(&self) -> String {
        self.api.as_ref().unwrap().base_url()
    }

    /// A new token acting as `user`; returns its secret.
    pub fn token(&self, user: &str) -> String {
        flowdesk::net::token::issue(self.engine.store(), user, "test", "admin", 0).unwrap().secret
    }

    pub fn get(&self, token: Option<&str>, path: &str) -> Answer {
        let mut request = self.agent.get(format!("{}{path}", self.base_url()));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        answer(request.call())
    }

    /// POSTs `body` as JSON.
    pub fn post(&self, token: Option<&str>, path: &str, body: &str) -> Answer {
        self.post_as(token, path, "application/json", body.as_bytes())
    }

    pub fn post_as(&self, token: Option<&str>, path: &str, content_type: &str, body: &[u8]) -> Answer {
        let mut request = self.agent.post(format!("{}{path}", self.base_url())).header("Content-Type", content_type);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        answer(request.send(body))
    }

    /// POSTs an empty JSON object with one header as given (an odd
    /// `Authorization`, say).
    pub fn post_with_header(&self, path: &str, name: &str, value: &str) -> Answer {
        let request = self
            .agent
            .post(format!("{}{path}", self.base_url()))
            .header("Content-Type", "application/json")
            .header(name, value);
        answer(request.send("{}"))
    }

    /// Starts an instance of the callback sample through the engine; returns
    /// its pending serial.
    pub fn pending_serial(&self, folio: &str) -> String {
        let progress = self.fixture.engine.start("admin", "callback", folio, &[]).unwrap();
        progress.waiting[0].clone()
    }
}

fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    let text = response.body_mut().read_to_string().unwrap();
    Answer { status, body: serde_json::from_str(&text).unwrap_or(Json::Null), location }
}

/// An answer read off a raw socket: status, the head as text, and the body
/// as JSON (`Null` when it is not JSON).
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: Json,
}

impl RawAnswer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl ApiFixture {
    /// Sends `request` as it is on a new connection and reads the answer up
    /// to the server's closing of the connection: for requests no HTTP
    /// client would send. The request should ask for `Connection: close`.
    pub fn raw(&self, request: &[u8]) -> RawAnswer {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.api.as_ref().unwrap().address()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(request).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        RawAnswer { status, head: head.to_owned(), body: serde_json::from_str(body).unwrap_or(Json::Null) }
    }
}
