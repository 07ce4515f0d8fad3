//! Gateways and lines: which gateways dissolve, and the walk from each
//! activity through them to the activities its flows reach.

use std::collections::HashSet;

use super::*;

impl Builder<'_> {
    /// Decides each gateway's fate; returns the activities a parallel join
    /// in front of them makes `All`. A gateway that cannot dissolve is made
    /// an activity without events (`Role::Activity`).
    pub(super) fn plan_gateways(&mut self) -> HashSet<usize> {
        let mut all = HashSet::new();
        for index in 0..self.nodes.len() {
            let Role::Gateway(kind) = self.nodes[index].role else { continue };
            let (ins, outs) = (self.in_edges(index), self.out_edges(index));
            let (id, name) = (
                self.nodes[index].element.attr("id").unwrap_or_default().to_owned(),
                self.nodes[index].name().to_owned(),
            );
            match kind {
                Gateway::Parallel => {
                    for &out in &outs {
                        if self.edges[out].rule.is_some() {
                            let flow = self.edges[out].id.clone();
                            let flow_name =
                                self.edges[out].element.and_then(|e| e.attr("name")).unwrap_or_default().to_owned();
                            self.report.add(
                                EntryKind::Changed,
                                "condition",
                                &flow,
                                &flow_name,
                                "it leaves a parallel gateway, which takes every branch: the condition is not used",
                            );
                        }
                    }
                    let single_target = match outs.as_slice() {
                        [out] => Some(self.edges[*out].target),
                        _ => None,
                    };
                    let joins_one = single_target.is_some_and(|target| {
                        self.nodes[target].role == Role::Activity
                            && self
                                .in_edges(target)
                                .iter()
                                .filter(|&&e| self.nodes[self.edges[e].source].role != Role::Boundary)
                                .all(|&e| e == outs[0])
                    });
                    if let (true, Some(target)) = (joins_one, single_target) {
                        all.insert(target);
                    } else if ins.len() > 1 {
                        self.nodes[index].role = Role::Activity;
                        self.report.add(
                            EntryKind::Changed,
                            "parallel gateway",
                            &id,
                            &name,
                            "it joins and splits: it became an activity without events that waits for All its \
                             lines",
                        );
                        all.insert(index);
                    }
                }
                Gateway::Inclusive | Gateway::Complex if ins.len() > 1 => self.report.add(
                    EntryKind::Changed,
                    words(&self.nodes[index].element.name),
                    &id,
                    &name,
                    "flowdesk cannot wait for just the branches that were taken: the activity after it starts \
                     once for each branch that arrives (Any)",
                ),
                Gateway::Exclusive if outs.iter().filter(|&&e| self.edges[e].rule.is_some()).count() > 1 => {
                    self.report.add(
                        EntryKind::Changed,
                        "exclusive gateway",
                        &id,
                        &name,
                        "flowdesk follows every line whose rule is true, BPMN only the first: the rules must \
                         exclude each other",
                    )
                }
                Gateway::EventBased if self.race_of_a_wait_and_timers(&outs) => self.report.add(
                    EntryKind::Changed,
                    "event-based gateway",
                    &id,
                    &name,
                    "a wait racing timers: the wait became an asynchronous event, each timer an escalation of it \
                     that goes where the timer leads",
                ),
                Gateway::EventBased => {
                    self.nodes[index].role = Role::Activity;
                    self.report.add(
                        EntryKind::Problem,
                        "event-based gateway",
                        &id,
                        &name,
                        "flowdesk has no race between events: it became an activity without events and every \
                         branch after it is taken; wait with one asynchronous event and an escalation instead",
                    );
                }
                _ => {}
            }
        }
        all
    }

    /// An event-based gateway before one wait (a message, signal or
    /// conditional catch event, or a receive task) and timer catch events is
    /// what flowdesk says as an asynchronous event with escalations: the
    /// timers are made the wait's (as boundary events are their task's).
    pub(super) fn race_of_a_wait_and_timers(&mut self, outs: &[usize]) -> bool {
        let mut waits = Vec::new();
        let mut timers = Vec::new();
        for &out in outs {
            let target = self.edges[out].target;
            let element = self.nodes[target].element;
            let definition = element
                .children
                .iter()
                .find(|c| c.ns == BPMN_NS && c.name.ends_with("EventDefinition"))
                .map(|d| d.name.as_str());
            let alone = self.in_edges(target).len() == 1;
            match (element.name.as_str(), definition) {
                ("intermediateCatchEvent", Some("timerEventDefinition")) if alone => timers.push(target),
                ("intermediateCatchEvent", Some(_)) | ("receiveTask", _) => waits.push(target),
                _ => return false,
            }
        }
        let [wait] = waits.as_slice() else { return false };
        for timer in timers {
            self.nodes[timer].role = Role::Boundary;
            self.raced.insert(timer, *wait);
        }
        true
    }

    /// Follows `edge` through dissolved gateways to the activities it
    /// reaches: (activity node, rules on the way, labels on the way).
    pub(super) fn walk(
        &self,
        edge: usize,
        rules: &mut Vec<String>,
        labels: &mut Vec<String>,
        visiting: &mut Vec<usize>,
        found: &mut Vec<(usize, Vec<String>, Vec<String>)>,
    ) {
        let left = self.steps.get();
        if left == 0 {
            return;
        }
        self.steps.set(left - 1);
        let e = &self.edges[edge];
        let source_role = self.nodes[e.source].role;
        let (rules_before, labels_before) = (rules.len(), labels.len());
        let name = e.element.and_then(|el| el.attr("name")).unwrap_or_default();
        let parallel = source_role == Role::Gateway(Gateway::Parallel);
        match (&e.rule, parallel) {
            (Some(rule), false) => {
                rules.push(rule.text.clone());
                match &rule.unread {
                    Some(written) if name.is_empty() => labels.push(written.clone()),
                    Some(written) => labels.push(format!("{name}: {written}")),
                    None if !name.is_empty() => labels.push(name.to_owned()),
                    None => {}
                }
            }
            _ if e.is_default && !parallel => {
                let others: Vec<String> = self
                    .out_edges(e.source)
                    .into_iter()
                    .filter(|&o| o != edge && !self.edges[o].is_default)
                    .filter_map(|o| self.edges[o].rule.as_ref().map(|r| r.text.clone()))
                    .collect();
                if !others.is_empty() {
                    rules.push(others.iter().map(|o| format!("!({o})")).collect::<Vec<_>>().join(" && "));
                }
                if !name.is_empty() {
                    labels.push(name.to_owned());
                }
            }
            _ => {
                if !name.is_empty() {
                    labels.push(name.to_owned());
                }
            }
        }
        let target = e.target;
        match self.nodes[target].role {
            Role::Activity => found.push((target, rules.clone(), labels.clone())),
            Role::Boundary => {}
            Role::Gateway(_) if visiting.contains(&target) || visiting.len() > 256 => {}
            Role::Gateway(_) => {
                visiting.push(target);
                for out in self.out_edges(target) {
                    self.walk(out, rules, labels, visiting, found);
                }
                visiting.pop();
            }
        }
        rules.truncate(rules_before);
        labels.truncate(labels_before);
    }
}

pub(super) fn compose(rules: &[String]) -> String {
    match rules {
        [] => String::new(),
        [one] => one.clone(),
        many => many.iter().map(|r| format!("({r})")).collect::<Vec<_>>().join(" && "),
    }
}
