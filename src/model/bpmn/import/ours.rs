//! flowdesk's own extension elements, as export writes them: what an
//! activity holds and what an escalation does, exactly.

use crate::model::bpmn::BPMN_NS;
use crate::model::bpmn::FLOWDESK_NS;
use crate::model::bpmn::report::{EntryKind, Report};
use crate::model::bpmn::xml::Element;
use crate::model::definition::{
    EscalationActionDraft, EventDraft, HeaderDraft, HttpRequestDraft, MailDraft, NotifyDraft, ServerEventDraft,
    TimerDraft,
};
use crate::model::ipc::{IpcDraft, MappingDraft};
use crate::model::rights::Right;

/// flowdesk's extension element `name` on `element`.
pub(super) fn extension<'e>(element: &'e Element, name: &str) -> Option<&'e Element> {
    element.child(BPMN_NS, "extensionElements")?.child(FLOWDESK_NS, name)
}

/// The events an activity's flowdesk extension lists.
pub(super) fn ours_events(element: &Element, ours: &Element) -> Vec<EventDraft> {
    let mut events = Vec::new();
    for child in ours.children.iter().filter(|c| c.ns == FLOWDESK_NS) {
        let get = |name| child.attr(name).unwrap_or_default().to_owned();
        let synchronous = child.attr("synchronous") != Some("false");
        match child.name.as_str() {
            "serverEvent" => {
                let script = match child.child(FLOWDESK_NS, "script") {
                    Some(script) => script.text.clone(),
                    // A script task's script is where BPMN keeps it, so that
                    // an edit in another tool is what flowdesk reads.
                    None if element.name == "scriptTask" => {
                        element.child(BPMN_NS, "script").map(|s| s.text.clone()).unwrap_or_default()
                    }
                    None => String::new(),
                };
                events.push(EventDraft::ServerEvent(ServerEventDraft { name: get("name"), synchronous, script }));
            }
            "httpRequest" => {
                let (headers, body) = request_parts(child);
                events.push(EventDraft::HttpRequest(HttpRequestDraft {
                    name: get("name"),
                    synchronous,
                    method: child.attr("method").unwrap_or(HttpRequestDraft::DEFAULT_METHOD).to_owned(),
                    url: get("url"),
                    headers,
                    body,
                    timeout_seconds: timeout(child),
                }));
            }
            "ipc" => {
                let mappings = |name| {
                    child
                        .children_named(FLOWDESK_NS, name)
                        .map(|m| MappingDraft {
                            from: m.attr("from").unwrap_or_default().to_owned(),
                            to: m.attr("to").unwrap_or_default().to_owned(),
                        })
                        .collect()
                };
                events.push(EventDraft::Ipc(IpcDraft {
                    name: get("name"),
                    synchronous,
                    process: get("process"),
                    version: child.attr("version").and_then(|v| v.parse().ok()),
                    folio: get("folio"),
                    inputs: mappings("input"),
                    outputs: mappings("output"),
                }));
            }
            "timer" => events.push(EventDraft::Timer(TimerDraft {
                name: get("name"),
                after: get("after"),
                at_field: get("atField"),
            })),
            "mail" => {
                let text = |name| child.child(FLOWDESK_NS, name).map(|e| e.text.clone()).unwrap_or_default();
                events.push(EventDraft::Mail(MailDraft {
                    name: get("name"),
                    synchronous,
                    to: get("to"),
                    cc: get("cc"),
                    subject: get("subject"),
                    body: text("body"),
                    html: text("html"),
                }));
            }
            _ => {}
        }
    }
    events
}

fn timeout(element: &Element) -> u64 {
    element.attr("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(HttpRequestDraft::DEFAULT_TIMEOUT_SECONDS)
}

fn request_parts(element: &Element) -> (Vec<HeaderDraft>, String) {
    let headers = element
        .children_named(FLOWDESK_NS, "header")
        .map(|h| HeaderDraft {
            name: h.attr("name").unwrap_or_default().to_owned(),
            value: h.attr("value").unwrap_or_default().to_owned(),
        })
        .collect();
    let body = element.child(FLOWDESK_NS, "body").map(|b| b.text.clone()).unwrap_or_default();
    (headers, body)
}

/// An escalation's action as flowdesk's extension writes it; a go-to's
/// target is the activity its flow reaches.
pub(super) fn ours_action(ours: &Element, go_to: Option<String>) -> EscalationActionDraft {
    let Some(action) = ours.children.iter().find(|c| c.ns == FLOWDESK_NS) else {
        return EscalationActionDraft::Fail;
    };
    match action.name.as_str() {
        "finish" => EscalationActionDraft::Finish {
            set: action
                .children_named(FLOWDESK_NS, "set")
                .map(|s| {
                    let value = s.attr("value").unwrap_or_default();
                    let json =
                        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
                    (s.attr("field").unwrap_or_default().to_owned(), json)
                })
                .collect(),
        },
        "goTo" => EscalationActionDraft::GoTo {
            activity: go_to.or_else(|| action.attr("activity").map(str::to_owned)).unwrap_or_default(),
        },
        "repeat" => EscalationActionDraft::Repeat { times: action.attr("times").and_then(|t| t.parse().ok()) },
        "notify" => {
            let (headers, body) = request_parts(action);
            EscalationActionDraft::Notify(NotifyDraft {
                method: action.attr("method").unwrap_or(HttpRequestDraft::DEFAULT_METHOD).to_owned(),
                url: action.attr("url").unwrap_or_default().to_owned(),
                headers,
                body,
                timeout_seconds: timeout(action),
            })
        }
        _ => EscalationActionDraft::Fail,
    }
}

/// The rights on the process its extension lists (`flowdesk:right`, which
/// export writes for a deployed process); one that is not a right or names
/// no user is reported, not guessed at.
pub(super) fn ours_rights(process: &Element, report: &mut Report) -> Vec<(String, Right)> {
    let Some(ours) = extension(process, "process") else { return Vec::new() };
    let mut rights = Vec::new();
    for element in ours.children_named(FLOWDESK_NS, "right") {
        let user = element.attr("user").unwrap_or_default();
        let right = element.attr("right").unwrap_or_default();
        match right.parse::<Right>() {
            Ok(parsed) if !user.is_empty() => rights.push((user.to_owned(), parsed)),
            Ok(_) => report.add(EntryKind::Ignored, "flowdesk:right", "", right, "it names no user"),
            Err(e) => report.add(EntryKind::Ignored, "flowdesk:right", "", user, e.to_string()),
        }
    }
    rights
}
