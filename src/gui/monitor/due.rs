//! When things fall due, in the monitor's words: the Due columns' cells
//! ("in 2 h", "overdue 5 min", red when overdue), and what the flow view
//! says of each escalation and timer event of an instance: when it fires,
//! or that it fired and what it did.
//!
//! Time is the engine's clock (the window's runtime's), never the
//! system's: a test moves it, and the words move with it.

use egui::{Color32, RichText, Ui};

use crate::engine::{InstanceDetail, InstanceStatus, InstanceTimer, Millis, TimerState, format_time};
use crate::gui::theme;
use crate::model::{ActivityDraft, EscalationActionDraft, EscalationDraft, EventDraft};

/// How far `due_at` lies from `now`, in the few words a list cell has: "in
/// 2 h", "overdue 5 min", "due now" within a second; the largest unit,
/// rounded down (the exact time is on hover).
pub fn due_words(now: Millis, due_at: Millis) -> String {
    let gap = due_at.abs_diff(now);
    if gap < 1_000 {
        return "due now".to_owned();
    }
    let span = span_words(gap);
    if due_at > now { format!("in {span}") } else { format!("overdue {span}") }
}

/// A span of milliseconds in its largest unit: seconds under a minute,
/// minutes under an hour, hours under two days, then days.
fn span_words(millis: u64) -> String {
    let seconds = millis / 1_000;
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3_600 => format!("{} min", seconds / 60),
        3_600..172_800 => format!("{} h", seconds / 3_600),
        _ => format!("{} d", seconds / 86_400),
    }
}

/// Whether something due at `due_at` is overdue at `now`: due by now, as
/// the engine's overdue filters judge it.
pub fn is_overdue(now: Millis, due_at: Millis) -> bool {
    due_at <= now
}

/// A Due cell: empty when nothing is due, red when overdue; the exact time
/// on hover.
pub fn due_cell(ui: &mut Ui, now: Millis, due_at: Option<Millis>) {
    let Some(due_at) = due_at else { return };
    let color = if is_overdue(now, due_at) { theme::ERROR } else { ui.visuals().text_color() };
    ui.label(RichText::new(due_words(now, due_at)).color(color)).on_hover_text(format!("Due {}", format_time(due_at)));
}

/// Where one line about a timer stands, which is how it is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Armed, due later.
    Pending,
    /// Armed and due by now: held (the instance is stopped or in error),
    /// or about to be fired.
    Overdue,
    /// It fired (for the last time).
    Fired,
    /// Never fires: its item closed first, or it could not be armed.
    Idle,
}

impl Standing {
    pub fn color(self) -> Color32 {
        match self {
            Standing::Pending => theme::TIMER,
            Standing::Overdue => theme::ERROR,
            Standing::Fired => theme::flow::COMPLETED,
            Standing::Idle => theme::flow::CANCELLED,
        }
    }
}

/// One line of the flow view about an escalation or a timer event of an
/// instance: what is shown under its activity, and the longer words a
/// screen reader (or a test) gets, with the exact time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerLine {
    pub text: String,
    pub label: String,
    pub standing: Standing,
}

/// What the escalations and timer events of `activity`'s run `destination_id`
/// (the run the flow view shows) come to at `now`: one line per timer the
/// run armed, in the order of the activity's escalations (a timer event's
/// first), and one per escalation the run's waiting item could not arm.
pub fn timer_lines(detail: &InstanceDetail, activity: &ActivityDraft, destination_id: i64, now: Millis) -> Vec<TimerLine> {
    let mut timers: Vec<&InstanceTimer> =
        detail.every_timer.iter().filter(|t| t.activity_destination_id == destination_id).collect();
    // Per escalation (a timer event's own first), the latest item's timer:
    // an event run again by a repeat keeps its item, a loop makes a new one.
    timers.sort_by_key(|t| (t.timer.escalation.map_or(0, |i| i + 1), std::cmp::Reverse(t.timer.serial_id)));
    timers.dedup_by_key(|t| t.timer.escalation);
    let waiting = detail.pending_items.iter().any(|item| item.activity_destination_id == destination_id);
    let mut lines: Vec<TimerLine> = timers.iter().map(|t| line(detail, activity, t, now)).collect();
    if waiting {
        for (index, escalation) in activity.escalations.iter().enumerate() {
            if !timers.iter().any(|t| t.timer.escalation == Some(index)) {
                let name = escalation_name(escalation, index);
                let label = format!("Escalation {name}: not armed for this wait ({})", rule_words(escalation));
                lines.push(TimerLine { text: format!("{name} · not armed"), label, standing: Standing::Idle });
            }
        }
    }
    lines
}

fn line(detail: &InstanceDetail, activity: &ActivityDraft, timer: &InstanceTimer, now: Millis) -> TimerLine {
    let due = timer.timer.due_at;
    let when = || due_words(now, due);
    let held = match detail.summary.status {
        InstanceStatus::Stopped => ", held while the instance is stopped",
        InstanceStatus::Error => ", held while the instance is in error",
        _ => "",
    };
    let armed = timer.timer.state == TimerState::Armed;
    let standing = match timer.timer.state {
        TimerState::Armed if is_overdue(now, due) => Standing::Overdue,
        TimerState::Armed => Standing::Pending,
        TimerState::Fired => Standing::Fired,
        TimerState::Disarmed => Standing::Idle,
    };
    let at = format_time(due);
    let Some(index) = timer.timer.escalation else {
        // A timer event's own wait.
        let event = activity.events.get(timer.event_index).map(EventDraft::name).unwrap_or("Wait");
        let (text, label) = match timer.timer.state {
            TimerState::Armed => (format!("{event} · completes {}", when()), format!("completes at {at}{held}")),
            TimerState::Fired => (format!("{event} · completed by its timer"), format!("completed by its timer, due {at}")),
            TimerState::Disarmed => {
                (format!("{event} · ended before its time"), format!("ended before its time ({at}): its item closed"))
            }
        };
        return TimerLine { text, label: format!("Timer {event}: {label}"), standing };
    };
    let Some(escalation) = activity.escalations.get(index) else {
        let name = format!("escalation {}", index + 1);
        return TimerLine { text: name.clone(), label: format!("Escalation {name}"), standing };
    };
    let name = escalation_name(escalation, index);
    let times = timer.timer.fired_count;
    let (text, label) = match (&escalation.action, timer.timer.state) {
        (EscalationActionDraft::Repeat { times: limit }, _) if times > 0 && armed => {
            let limit = limit.map(|n| format!(" of {n}")).unwrap_or_default();
            (format!("ran again {times}{limit}, next {}", when()), format!("ran the event again {times}{limit} time(s); next at {at}{held}"))
        }
        (EscalationActionDraft::Notify(_), _) if times > 0 && armed => (
            format!("notified {times}×, again {}", when()),
            format!("notification sent {times} time(s), not accepted yet; tried again at {at}{held}"),
        ),
        (_, TimerState::Armed) => {
            (format!("fires {}", when()), format!("fires at {at} ({}){held}", rule_words(escalation)))
        }
        (action, TimerState::Fired) => {
            let did = did_words(detail, action, times);
            (format!("fired: {did}"), format!("fired (due {at}): {did}"))
        }
        (_, TimerState::Disarmed) => {
            ("not needed".to_owned(), format!("not needed: its item closed before {at}"))
        }
    };
    TimerLine { text: format!("{name} · {text}"), label: format!("Escalation {name}: {label}"), standing }
}

/// An escalation's name, or its place when it has none.
fn escalation_name(escalation: &EscalationDraft, index: usize) -> String {
    if escalation.name.trim().is_empty() { format!("escalation {}", index + 1) } else { escalation.name.clone() }
}

/// When an escalation falls due, as written: "after 1h", "at reply_by".
fn rule_words(escalation: &EscalationDraft) -> String {
    if escalation.at_field.trim().is_empty() {
        format!("after {}", escalation.after.trim())
    } else {
        format!("at {}", escalation.at_field.trim())
    }
}

/// What an escalation that fired did.
fn did_words(detail: &InstanceDetail, action: &EscalationActionDraft, times: u32) -> String {
    match action {
        EscalationActionDraft::Finish { .. } => "finished the item".to_owned(),
        EscalationActionDraft::GoTo { activity } => {
            let activities = &detail.definition.draft.activities;
            let name = activities.iter().find(|a| a.id == *activity).map_or(activity.as_str(), |a| a.name.as_str());
            format!("went to {name}")
        }
        EscalationActionDraft::Repeat { .. } => format!("ran the event again {times} time(s)"),
        EscalationActionDraft::Notify(_) => "notified".to_owned(),
        EscalationActionDraft::Fail => "put the instance in error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Millis = 60_000;
    const HOUR: Millis = 60 * MINUTE;

    #[test]
    fn due_times_read_in_their_largest_unit_rounded_down() {
        let now = 1_000_000_000;
        let cases = [
            (now, "due now"),
            (now - 999, "due now"),
            (now + 45_000, "in 45 s"),
            (now + 2 * HOUR + 59 * MINUTE, "in 2 h"),
            (now - 5 * MINUTE - 30_000, "overdue 5 min"),
            (now + 47 * HOUR, "in 47 h"),
            (now - 3 * 24 * HOUR, "overdue 3 d"),
        ];
        for (due, words) in cases {
            assert_eq!(due_words(now, due), words, "{}", due - now);
        }
        assert!(is_overdue(now, now) && !is_overdue(now, now + 1));
    }
}
