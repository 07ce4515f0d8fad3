//! Edits of a process draft that the designer offers, as plain functions so
//! they can be tested without a window.

use serde::{Deserialize, Serialize};

use crate::gui::designer::Element;
use crate::gui::designer::palette::unique_name;
use crate::model::{
    ActivityDraft, EscalationActionDraft, EscalationDraft, EventDraft, LineDraft, Position, PrecedingRule, ProcessDraft,
};

/// A fresh activity id (`activity_7`) not used in the draft.
pub fn new_activity_id(draft: &ProcessDraft) -> String {
    (1..).map(|n| format!("activity_{n}")).find(|id| draft.activities.iter().all(|a| &a.id != id)).unwrap_or_default()
}

fn activity_names(draft: &ProcessDraft) -> Vec<&str> {
    draft.activities.iter().map(|a| a.name.as_str()).collect()
}

/// Adds an activity at `position` holding `events`; the first activity of an
/// empty process becomes its start. Returns the new id.
pub fn add_activity(draft: &mut ProcessDraft, position: Position, events: Vec<EventDraft>) -> String {
    let id = new_activity_id(draft);
    let base = events.first().map(|e| e.name().to_owned()).unwrap_or_else(|| "Activity".to_owned());
    let name = unique_name(&base, &activity_names(draft));
    let start = draft.activities.is_empty();
    draft.activities.push(ActivityDraft {
        id: id.clone(),
        name,
        position,
        start,
        preceding_rule: PrecedingRule::Any,
        events,
        escalations: Vec::new(),
    });
    id
}

pub fn event_names(activity: &ActivityDraft) -> Vec<&str> {
    activity.events.iter().map(|e| e.name()).collect()
}

/// Appends an event to an activity; returns its index.
pub fn append_event(draft: &mut ProcessDraft, activity_id: &str, event: EventDraft) -> Option<usize> {
    let activity = draft.activities.iter_mut().find(|a| a.id == activity_id)?;
    activity.events.push(event);
    Some(activity.events.len() - 1)
}

/// Moves an event to `to_index` of another (or the same) activity. `to_index`
/// is a position in the target's list as it was before the move.
pub fn move_event(draft: &mut ProcessDraft, from: (&str, usize), to: (&str, usize)) -> Option<usize> {
    let source = draft.activities.iter().position(|a| a.id == from.0)?;
    let target = draft.activities.iter().position(|a| a.id == to.0)?;
    if from.1 >= draft.activities[source].events.len() {
        return None;
    }
    let mut index = to.1.min(draft.activities[target].events.len());
    if source == target && index > from.1 {
        index -= 1;
    }
    let mut event = draft.activities[source].events.remove(from.1);
    if source != target {
        let taken = event_names(&draft.activities[target]);
        let unique = unique_name(event.name(), &taken);
        event.set_name(unique);
    }
    draft.activities[target].events.insert(index, event);
    Some(index)
}

/// Adds an escalation to an activity: after an hour, fail, named so that
/// it is unique in the activity; filled in from there in the properties.
pub fn add_escalation(draft: &mut ProcessDraft, activity_id: &str) -> Option<usize> {
    let activity = draft.activities.iter_mut().find(|a| a.id == activity_id)?;
    let taken: Vec<&str> = activity.escalations.iter().map(|e| e.name.as_str()).collect();
    let name = unique_name("Escalation", &taken);
    activity.escalations.push(EscalationDraft {
        name,
        after: "1h".to_owned(),
        at_field: String::new(),
        action: EscalationActionDraft::Fail,
    });
    Some(activity.escalations.len() - 1)
}

pub fn remove_escalation(draft: &mut ProcessDraft, activity_id: &str, index: usize) {
    if let Some(activity) = draft.activities.iter_mut().find(|a| a.id == activity_id)
        && index < activity.escalations.len()
    {
        activity.escalations.remove(index);
    }
}

/// Moves an escalation to `to` in its activity's list (the order in which
/// escalations due at the same moment act).
pub fn move_escalation(draft: &mut ProcessDraft, activity_id: &str, from: usize, to: usize) {
    if let Some(activity) = draft.activities.iter_mut().find(|a| a.id == activity_id)
        && from < activity.escalations.len()
        && to < activity.escalations.len()
    {
        let escalation = activity.escalations.remove(from);
        activity.escalations.insert(to, escalation);
    }
}

/// Connects two activities with a line, unless it would connect an activity to
/// itself. Returns the new line's index.
pub fn connect(draft: &mut ProcessDraft, from: &str, to: &str) -> Option<usize> {
    if from == to {
        return None;
    }
    draft.lines.push(LineDraft { from: from.to_owned(), to: to.to_owned(), label: String::new(), rule: String::new() });
    Some(draft.lines.len() - 1)
}

pub fn set_start(draft: &mut ProcessDraft, id: &str) {
    for activity in &mut draft.activities {
        activity.start = activity.id == id;
    }
}

/// Deletes the selected elements: activities with their lines, events, lines.
pub fn delete(draft: &mut ProcessDraft, selection: &[Element]) {
    let mut line_indices: Vec<usize> = Vec::new();
    let mut events: Vec<(String, usize)> = Vec::new();
    let mut activities: Vec<String> = Vec::new();
    for element in selection {
        match element {
            Element::Activity(id) => activities.push(id.clone()),
            Element::Event { activity, index } => events.push((activity.clone(), *index)),
            Element::Line(index) => line_indices.push(*index),
        }
    }
    // Events from the end so earlier indices stay valid.
    events.sort_by_key(|e| std::cmp::Reverse(e.1));
    for (activity_id, index) in events {
        if let Some(activity) = draft.activities.iter_mut().find(|a| a.id == activity_id)
            && index < activity.events.len()
        {
            activity.events.remove(index);
        }
    }
    let mut index = 0;
    draft.lines.retain(|line| {
        let keep = !line_indices.contains(&index) && !activities.contains(&line.from) && !activities.contains(&line.to);
        index += 1;
        keep
    });
    draft.activities.retain(|a| !activities.contains(&a.id));
}

/// What Copy puts on the clipboard: activities and the lines between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clip {
    pub flowdesk_clip: u32,
    pub activities: Vec<ActivityDraft>,
    pub lines: Vec<LineDraft>,
}

pub fn copy(draft: &ProcessDraft, selection: &[Element]) -> Option<Clip> {
    let ids: Vec<&str> = selection
        .iter()
        .filter_map(|e| match e {
            Element::Activity(id) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    if ids.is_empty() {
        return None;
    }
    let activities: Vec<ActivityDraft> =
        draft.activities.iter().filter(|a| ids.contains(&a.id.as_str())).cloned().collect();
    let lines = draft
        .lines
        .iter()
        .filter(|l| ids.contains(&l.from.as_str()) && ids.contains(&l.to.as_str()))
        .cloned()
        .collect();
    Some(Clip { flowdesk_clip: 1, activities, lines })
}

/// Pastes a clip offset by `offset`, with fresh ids and names; returns the new ids.
pub fn paste(draft: &mut ProcessDraft, clip: &Clip, offset: (f32, f32)) -> Vec<String> {
    let mut renamed: Vec<(String, String)> = Vec::new();
    for activity in &clip.activities {
        let id = new_activity_id(draft);
        let name = unique_name(&activity.name, &activity_names(draft));
        renamed.push((activity.id.clone(), id.clone()));
        draft.activities.push(ActivityDraft {
            id,
            name,
            position: Position { x: activity.position.x + offset.0, y: activity.position.y + offset.1 },
            start: false,
            ..activity.clone()
        });
    }
    let new_id = |old: &str| renamed.iter().find(|(o, _)| o == old).map(|(_, n)| n.clone());
    // A go-to between pasted activities goes to the pasted copy, as lines do;
    // one to an activity left behind still goes there.
    for (_, id) in &renamed {
        let Some(activity) = draft.activities.iter_mut().find(|a| a.id == *id) else { continue };
        for escalation in &mut activity.escalations {
            if let EscalationActionDraft::GoTo { activity: target } = &mut escalation.action
                && let Some(pasted) = new_id(target)
            {
                *target = pasted;
            }
        }
    }
    for line in &clip.lines {
        if let (Some(from), Some(to)) = (new_id(&line.from), new_id(&line.to)) {
            draft.lines.push(LineDraft { from, to, ..line.clone() });
        }
    }
    renamed.into_iter().map(|(_, new)| new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::designer::palette::TEMPLATES;

    fn draft() -> ProcessDraft {
        ProcessDraft::from_json(r#"{ "name": "p" }"#, "t").unwrap()
    }

    #[test]
    fn first_activity_is_the_start_and_names_are_unique() {
        let mut d = draft();
        let event = (TEMPLATES[0].make)(&[]);
        let a = add_activity(&mut d, Position::default(), vec![event.clone()]);
        let b = add_activity(&mut d, Position::default(), vec![event]);
        assert!(d.activities[0].start && !d.activities[1].start);
        assert_ne!(a, b);
        assert_eq!(d.activities[1].name, "Server Event 2");
    }

    #[test]
    fn events_move_within_and_between_activities() {
        let mut d = draft();
        let a = add_activity(&mut d, Position::default(), vec![(TEMPLATES[0].make)(&[])]);
        append_event(&mut d, &a, (TEMPLATES[1].make)(&[]));
        let b = add_activity(&mut d, Position::default(), vec![]);
        // Reorder inside A: the second event goes first.
        assert_eq!(move_event(&mut d, (&a, 1), (&a, 0)), Some(0));
        assert_eq!(d.activities[0].events[0].name(), "Call external system");
        // Move to B.
        move_event(&mut d, (&a, 0), (&b, 0));
        assert_eq!(d.activities[0].events.len(), 1);
        assert_eq!(d.activities[1].events[0].name(), "Call external system");
    }

    #[test]
    fn deleting_an_activity_removes_its_lines_and_paste_renames() {
        let mut d = draft();
        let a = add_activity(&mut d, Position::default(), vec![]);
        let b = add_activity(&mut d, Position::default(), vec![]);
        connect(&mut d, &a, &b);
        let clip = copy(&d, &[Element::Activity(a.clone()), Element::Activity(b.clone())]).unwrap();
        let pasted = paste(&mut d, &clip, (40.0, 40.0));
        assert_eq!(pasted.len(), 2);
        assert_eq!(d.lines.len(), 2);
        assert_eq!(d.lines[1].from, pasted[0]);
        delete(&mut d, &[Element::Activity(a)]);
        assert_eq!(d.activities.len(), 3);
        assert_eq!(d.lines.len(), 1);
    }

    #[test]
    fn escalations_are_added_with_unique_names_moved_and_removed() {
        let mut d = draft();
        let a = add_activity(&mut d, Position::default(), vec![]);
        assert_eq!(add_escalation(&mut d, &a), Some(0));
        assert_eq!(add_escalation(&mut d, &a), Some(1));
        let names = |d: &ProcessDraft| d.activities[0].escalations.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&d), ["Escalation", "Escalation 2"]);
        move_escalation(&mut d, &a, 1, 0);
        assert_eq!(names(&d), ["Escalation 2", "Escalation"]);
        move_escalation(&mut d, &a, 1, 2); // past the end: nothing
        remove_escalation(&mut d, &a, 0);
        assert_eq!(names(&d), ["Escalation"]);
    }

    /// A go-to between copied activities follows the copy, as a line does.
    #[test]
    fn pasted_go_tos_go_to_the_pasted_activities() {
        let mut d = draft();
        let a = add_activity(&mut d, Position::default(), vec![]);
        let b = add_activity(&mut d, Position::default(), vec![]);
        let outside = add_activity(&mut d, Position::default(), vec![]);
        for target in [&b, &outside] {
            add_escalation(&mut d, &a);
            let last = d.activities[0].escalations.last_mut().unwrap();
            last.action = EscalationActionDraft::GoTo { activity: target.clone() };
        }
        let clip = copy(&d, &[Element::Activity(a.clone()), Element::Activity(b.clone())]).unwrap();
        let pasted = paste(&mut d, &clip, (40.0, 40.0));
        let copy_of_a = d.activities.iter().find(|x| x.id == pasted[0]).unwrap();
        let targets: Vec<&EscalationActionDraft> = copy_of_a.escalations.iter().map(|e| &e.action).collect();
        assert_eq!(
            targets,
            [
                &EscalationActionDraft::GoTo { activity: pasted[1].clone() },
                &EscalationActionDraft::GoTo { activity: outside.clone() }
            ]
        );
    }
}
