//! The palette of event templates. Adding a template (client event, mail,
//! sub-process, timer) is one more entry in [`TEMPLATES`] and, if it is a new
//! event kind, one more `EventDraft` variant.

use crate::model::{EventDraft, HttpRequestDraft, IpcDraft, MailDraft, ServerEventDraft, TimerDraft};

/// Which icon a template shows; the textures are loaded by the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateIcon {
    ServerEvent,
    AsyncServerEvent,
    HttpRequest,
    /// Drawn, not a texture: a clock.
    Timer,
    /// Drawn, not a texture: an envelope.
    Mail,
    /// Drawn, not a texture: a box in a box.
    SubProcess,
}

#[derive(Debug, Clone, Copy)]
pub struct EventTemplate {
    pub name: &'static str,
    pub description: &'static str,
    pub icon: TemplateIcon,
    /// The new event, named so that it is unique among `existing` names.
    pub make: fn(existing: &[&str]) -> EventDraft,
}

pub const TEMPLATES: &[EventTemplate] = &[
    EventTemplate {
        name: "Server Event",
        description: "Runs its script and completes (Synchronous).",
        icon: TemplateIcon::ServerEvent,
        make: |existing| server_event(existing, true),
    },
    EventTemplate {
        name: "Server Event (asynchronous)",
        description: "Runs its script, then waits for a callback on its serial number.",
        icon: TemplateIcon::AsyncServerEvent,
        make: |existing| server_event(existing, false),
    },
    EventTemplate {
        name: "HTTP request",
        description: "Sends an HTTP request to an external system; synchronous, or waits for a callback on the serial it sends.",
        icon: TemplateIcon::HttpRequest,
        make: http_request,
    },
    EventTemplate {
        name: "Wait",
        description: "Waits a duration (30m, 2h, 3d) or until the date or date-time a field holds, then completes.",
        icon: TemplateIcon::Timer,
        make: timer,
    },
    EventTemplate {
        name: "Mail",
        description: "Sends one e-mail through the SMTP server set in Settings, and completes once the server has accepted it (always synchronous).",
        icon: TemplateIcon::Mail,
        make: mail,
    },
    EventTemplate {
        name: "Sub-process (IPC)",
        description: "Starts an instance of another process. Synchronous (unlike a server event) means the parent waits until the child completes and copies its outputs back; asynchronous starts the child and goes on.",
        icon: TemplateIcon::SubProcess,
        make: |existing| EventDraft::Ipc(IpcDraft::new(&unique_name("Sub-process", existing))),
    },
];

fn mail(existing: &[&str]) -> EventDraft {
    EventDraft::Mail(MailDraft {
        name: unique_name("Send mail", existing),
        synchronous: true,
        to: String::new(),
        cc: String::new(),
        subject: "${folio}".to_owned(),
        body: String::new(),
        html: String::new(),
    })
}

fn timer(existing: &[&str]) -> EventDraft {
    EventDraft::Timer(TimerDraft {
        name: unique_name("Wait", existing),
        after: "1h".to_owned(),
        at_field: String::new(),
    })
}

fn http_request(existing: &[&str]) -> EventDraft {
    EventDraft::HttpRequest(HttpRequestDraft {
        name: unique_name("HTTP request", existing),
        synchronous: true,
        method: HttpRequestDraft::DEFAULT_METHOD.to_owned(),
        url: String::new(),
        headers: Vec::new(),
        body: String::new(),
        timeout_seconds: HttpRequestDraft::DEFAULT_TIMEOUT_SECONDS,
    })
}

fn server_event(existing: &[&str], synchronous: bool) -> EventDraft {
    let base = if synchronous { "Server Event" } else { "Call external system" };
    let script = if synchronous {
        "// Data fields are variables here; log(\"text\") writes to the audit trail.\n".to_owned()
    } else {
        "// Hand `serial` to the external system; it finishes this event with it.\nlog(`waiting for callback on ${serial}`);\n".to_owned()
    };
    EventDraft::ServerEvent(ServerEventDraft { name: unique_name(base, existing), synchronous, script })
}

/// `base`, or `base 2`, `base 3`... whichever is not taken yet.
pub fn unique_name(base: &str, existing: &[&str]) -> String {
    if !existing.contains(&base) {
        return base.to_owned();
    }
    (2..).map(|n| format!("{base} {n}")).find(|name| !existing.contains(&name.as_str())).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_unique() {
        assert_eq!(unique_name("A", &[]), "A");
        assert_eq!(unique_name("A", &["A", "A 2"]), "A 3");
    }
}
