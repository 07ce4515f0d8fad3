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
/// 2 h", "overdue 5 min", "due now" within a second; in the largest unit
/// (the exact time is on hover). What is ahead is rounded to the nearest
/// (1 h 59 min is "in 2 h"); what has passed is counted in whole units, as
/// an age is ("overdue 5 min" from five minutes on).
pub fn due_words(now: Millis, due_at: Millis) -> String {
    let gap = due_at.abs_diff(now);
    if gap < 1_000 {
        return "due now".to_owned();
    }
    if due_at > now { format!("in {}", span_words(gap, true)) } else { format!("overdue {}", span_words(gap, false)) }
}

/// A span of milliseconds in its largest unit (seconds under a minute,
/// minutes under an hour, hours under two days, then days), to the nearest
/// unit or in whole units; rounding up to the next unit says that one.
fn span_words(millis: u64, nearest: bool) -> String {
    const UNITS: [(u64, u64, &str); 4] =
        [(1_000, 60, "s"), (60_000, 60, "min"), (3_600_000, 48, "h"), (86_400_000, u64::MAX, "d")];
    for (index, (unit, up_to, name)) in UNITS.into_iter().enumerate() {
        let whole = millis / unit;
        let count = if nearest { (millis + unit / 2) / unit } else { whole };
        if whole < up_to {
            if count < up_to || index + 1 == UNITS.len() {
                return format!("{count} {name}");
            }
            // Rounded up into the next unit: 59.6 min is "1 h".
            let (next, _, next_name) = UNITS[index + 1];
            return format!("{} {next_name}", (millis + next / 2) / next);
        }
    }
    format!("{} d", millis / 86_400_000)
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
    let color = due_color(now, due_at, ui.visuals().text_color());
    ui.label(RichText::new(due_words(now, due_at)).color(color)).on_hover_text(format!("Due {}", format_time(due_at)));
}

/// A due time's colour in a list: red once overdue, else the text's.
pub fn due_color(now: Millis, due_at: Millis, text: Color32) -> Color32 {
    if is_overdue(now, due_at) { theme::ERROR } else { text }
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
/// instance: what is shown under its activity, and the same with the
/// exact time for screen readers (and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerLine {
    pub text: String,
    pub label: String,
    pub standing: Standing,
}

impl TimerLine {
    /// `kind` ("Escalation", "Timer") and `text` are what is drawn;
    /// `detail` (the exact time, the rule) is only said.
    fn new(kind: &str, text: String, detail: String, standing: Standing) -> TimerLine {
        TimerLine { label: format!("{kind} {text}; {detail}"), text, standing }
    }
}

/// What the escalations and timer events of `activity`'s run `destination_id`
/// (the run the flow view shows) come to at `now`: one line per timer the
/// run armed, a timer event's first, then the escalations in their order,
/// and one per escalation the run's waiting item could not arm.
pub fn timer_lines(
    detail: &InstanceDetail,
    activity: &ActivityDraft,
    destination_id: i64,
    now: Millis,
) -> Vec<TimerLine> {
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
                let text = format!("{} · not armed", escalation_name(escalation, index));
                let detail = format!("{} could not be worked out when the wait began", rule_words(escalation));
                lines.push(TimerLine::new("Escalation", text, detail, Standing::Idle));
            }
        }
    }
    lines
}

fn line(detail: &InstanceDetail, activity: &ActivityDraft, timer: &InstanceTimer, now: Millis) -> TimerLine {
    let due = timer.timer.due_at;
    // "fires in 2 h", but "overdue 5 min" and "due now" as they are.
    let when = |verb: &str| {
        let words = due_words(now, due);
        if due > now && words.starts_with("in ") { format!("{verb} {words}") } else { words }
    };
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
        let (text, detail) = match timer.timer.state {
            TimerState::Armed => (when("completes"), format!("due {at}{held}")),
            TimerState::Fired => ("completed by its timer".to_owned(), format!("due {at}")),
            TimerState::Disarmed => ("ended before its time".to_owned(), format!("its item closed before {at}")),
        };
        return TimerLine::new("Timer", format!("{event} · {text}"), detail, standing);
    };
    let Some(escalation) = activity.escalations.get(index) else {
        let text = format!("escalation {} · {}", index + 1, timer.timer.state);
        return TimerLine::new("Escalation", text, format!("due {at}"), standing);
    };
    let name = escalation_name(escalation, index);
    let rule = rule_words(escalation);
    let times = timer.timer.fired_count;
    let (text, detail) = match (&escalation.action, timer.timer.state) {
        (EscalationActionDraft::Repeat { times: limit }, _) if times > 0 && armed => {
            let limit = limit.map(|n| format!(" of {n}")).unwrap_or_default();
            (format!("ran again {times}{limit}, {}", when("next")), format!("next due {at} ({rule}){held}"))
        }
        (EscalationActionDraft::Notify(_), _) if times > 0 && armed => {
            (format!("notified {times}×, {}", when("again")), format!("not accepted yet; next try due {at}{held}"))
        }
        (_, TimerState::Armed) => (when("fires"), format!("due {at} ({rule}){held}")),
        (action, TimerState::Fired) => {
            (format!("fired: {}", did_words(detail, action, times)), format!("due {at} ({rule})"))
        }
        (_, TimerState::Disarmed) => ("not needed".to_owned(), format!("its item closed before {at}")),
    };
    TimerLine::new("Escalation", format!("{name} · {text}"), detail, standing)
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
    fn due_times_read_in_their_largest_unit_what_is_ahead_to_the_nearest() {
        let now = 1_000_000_000;
        let cases = [
            (now, "due now"),
            (now - 999, "due now"),
            (now + 45_000, "in 45 s"),
            (now + 59_700, "in 1 min"),
            (now + 2 * HOUR + 59 * MINUTE, "in 3 h"),
            (now + HOUR + 59 * MINUTE, "in 2 h"),
            (now + 59 * MINUTE + 40_000, "in 1 h"),
            (now - 5 * MINUTE - 30_000, "overdue 5 min"),
            (now - 59 * MINUTE - 40_000, "overdue 59 min"),
            (now + 47 * HOUR, "in 47 h"),
            (now + 47 * HOUR + 40 * MINUTE, "in 2 d"),
            (now - 3 * 24 * HOUR, "overdue 3 d"),
        ];
        for (due, words) in cases {
            assert_eq!(due_words(now, due), words, "{}", due - now);
        }
        assert!(is_overdue(now, now) && !is_overdue(now, now + 1));
    }

    #[test]
    fn a_due_time_turns_red_once_overdue() {
        let text = Color32::BLACK;
        assert_eq!(due_color(10 * HOUR, 10 * HOUR + 1, text), text);
        assert_eq!(due_color(10 * HOUR, 10 * HOUR, text), theme::ERROR);
        assert_eq!(due_color(10 * HOUR, 5 * MINUTE, text), theme::ERROR);
    }
}
