//! The overview: the monitor's first tab, an operator's cockpit.
//!
//! Per process version, instances by status (each count a link into the
//! instance list filtered by that process, version and status) and pending
//! server items by age, the oldest named; a chart of instances started and
//! completed over the last hour, day or week (`egui_plot`); the incidents
//! (errors grouped by reason, `engine::overview`) with Retry all, Stop all
//! and Open one; and the diagram of a chosen version with its counts per
//! activity (`heat.rs`), an activity clicked opening the list of the
//! instances there.
//!
//! Everything comes from the query worker (`queries.rs`: `Overview`,
//! `Throughput`, `Diagram`), which answers from the store's aggregates; the
//! panel draws what it last got and asks again with the monitor's refresh.
//! What it asks of the monitor (a filtered list, an instance, an incident's
//! bulk action) it returns as [`OverviewAction`]s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder};
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};

use crate::engine::{
    ActivityCount, InstanceFilter, InstanceStatus, Millis, Overview, ReasonKey, Span, Throughput, VersionOverview,
    format_age, format_time,
};
use crate::gui::designer::View;
use crate::gui::monitor::actions::{IncidentOperation, IncidentProgress};
use crate::gui::monitor::heat;
use crate::gui::monitor::queries::{Query, Reply};
use crate::gui::theme::{self, flow};
use crate::model::CompiledProcess;

/// What the overview asks of the monitor.
#[derive(Debug, Clone, PartialEq)]
pub enum OverviewAction {
    /// Show the instance list with this filter.
    List(InstanceFilter),
    /// Show this instance.
    Open(i64),
    /// Retry or stop every instance of an incident.
    OnIncident { key: ReasonKey, operation: IncidentOperation, progress: IncidentProgress },
}

/// A process version chosen, `None` for all.
type Chosen = Option<(String, u32)>;

/// A version's diagram and the counts on it.
struct Diagram {
    process: String,
    version: u32,
    definition: Arc<CompiledProcess>,
    counts: Vec<ActivityCount>,
}

/// Retry all or Stop all, sent and not answered yet.
struct Running {
    key: ReasonKey,
    operation: IncidentOperation,
    progress: IncidentProgress,
}

#[derive(Default)]
pub struct OverviewPanel {
    /// Drawn since the last refresh: only then is it asked for.
    shown: bool,
    overview: Option<Overview>,
    error: Option<String>,
    span: Span,
    /// The version the chart and the diagram are of (the chart: every
    /// version when `None`; the diagram: the first version listed).
    chosen: Option<(String, u32)>,
    /// The chart's buckets, with the version and span they are of.
    throughput: Option<(Chosen, Span, Throughput)>,
    diagram: Option<Diagram>,
    diagram_error: Option<String>,
    incident: Option<ReasonKey>,
    view: View,
    fit: bool,
    confirm: Option<(ReasonKey, IncidentOperation, u64)>,
    running: Option<Running>,
    /// What the last Retry all or Stop all did, in words.
    pub report: Option<(String, bool)>,
    /// When the overview was first asked for, and how long its answer took:
    /// `bench-monitor` reports it.
    asked_at: Option<Instant>,
    pub answered_after: Option<Duration>,
    /// Refresh was pressed: the monitor reads everything again at once.
    refresh_now: bool,
    /// What is shown changed (first shown, another version or span
    /// chosen, the first overview came): the overview asks at once rather
    /// than at the monitor's next refresh.
    ask_now: bool,
}

impl OverviewPanel {
    /// The overview last read, if any.
    pub fn overview(&self) -> Option<&Overview> {
        self.overview.as_ref()
    }

    /// The diagram's counts last read, with the version they are of.
    pub fn diagram_counts(&self) -> Option<(&str, u32, &[ActivityCount])> {
        self.diagram.as_ref().map(|d| (d.process.as_str(), d.version, d.counts.as_slice()))
    }

    /// Whether Refresh was pressed since the last call.
    pub fn take_refresh(&mut self) -> bool {
        std::mem::take(&mut self.refresh_now)
    }

    /// Whether what is shown changed since the last call, so that the
    /// overview should be asked for at once.
    pub fn take_ask_now(&mut self) -> bool {
        let first = self.asked_at.is_none();
        std::mem::take(&mut self.ask_now) || first
    }

    /// Whether a Retry all or Stop all waits for its answer.
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// The version the diagram shows: the chosen one, or the first listed.
    fn diagram_version(&self) -> Option<(String, u32)> {
        self.chosen.clone().or_else(|| {
            let overview = self.overview.as_ref()?;
            overview.versions.first().map(|v| (v.process.clone(), v.version))
        })
    }

    /// What to ask the query worker for, when the overview is on screen.
    pub fn queries(&mut self) -> Vec<Query> {
        if !std::mem::take(&mut self.shown) {
            return Vec::new();
        }
        if self.asked_at.is_none() {
            self.asked_at = Some(Instant::now());
        }
        let mut queries = vec![Query::Overview, Query::Throughput { version: self.chosen.clone(), span: self.span }];
        if let Some((process, version)) = self.diagram_version() {
            queries.push(Query::Diagram { process, version });
        }
        queries
    }

    /// Takes in a reply meant for the overview; hands back any other.
    pub fn take(&mut self, reply: Reply) -> Option<Reply> {
        match reply {
            Reply::Overview(overview) => {
                if self.answered_after.is_none() {
                    self.answered_after = self.asked_at.map(|at| at.elapsed());
                }
                match *overview {
                    Ok(overview) => {
                        let first_time = self.overview.is_none();
                        self.overview = Some(overview);
                        self.error = None;
                        // The diagram's version is known only now.
                        if first_time && self.chosen.is_none() {
                            self.ask_now = true;
                        }
                    }
                    Err(error) => self.error = Some(error),
                }
                None
            }
            Reply::Throughput { version, span, throughput } => {
                if version == self.chosen && span == self.span {
                    match throughput {
                        Ok(throughput) => self.throughput = Some((version, span, throughput)),
                        Err(error) => self.error = Some(error),
                    }
                }
                None
            }
            Reply::Diagram { process, version, diagram } => {
                if self.diagram_version() == Some((process.clone(), version)) {
                    match diagram {
                        Ok((definition, counts)) => {
                            let changed =
                                self.diagram.as_ref().is_none_or(|d| d.process != process || d.version != version);
                            self.fit |= changed;
                            self.diagram = Some(Diagram { process, version, definition, counts });
                            self.diagram_error = None;
                        }
                        Err(error) => self.diagram_error = Some(error),
                    }
                }
                None
            }
            other => Some(other),
        }
    }

    /// The answer to Retry all or Stop all.
    pub fn answered(&mut self, words: String, succeeded: bool) {
        self.running = None;
        self.report = Some((words, succeeded));
    }

    /// Draws the overview; returns what it asks of the monitor.
    pub fn ui(&mut self, ui: &mut Ui, now: Millis, user: &str) -> Vec<OverviewAction> {
        self.shown = true;
        let mut actions = Vec::new();
        if self.overview.is_none() && self.error.is_none() {
            // Asked at once, not at the next refresh.
            ui.ctx().request_repaint();
        }
        egui::Panel::top("overview-bar").show(ui, |ui| self.bar(ui));
        // The diagram: a third of the window's height by default.
        let diagram_height = (ui.available_height() * 0.36).clamp(160.0, 320.0);
        egui::Panel::bottom("overview-diagram").resizable(true).default_size(diagram_height).min_size(140.0).show(
            ui,
            |ui| {
                self.diagram_ui(ui, now, &mut actions);
            },
        );
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
                if let Some(error) = &self.error {
                    ui.colored_label(theme::ERROR, error);
                }
                let Some(overview) = self.overview.clone() else {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("Reading the overview…");
                    });
                    return;
                };
                if overview.versions.is_empty() {
                    ui.label(format!(
                        "No instances that {user} may see. Counts cover the processes a user may view whole \
                         (View, Server Event or Admin)."
                    ));
                }
                self.counts_table(ui, &overview, &mut actions);
                ui.add_space(8.0);
                self.incidents_ui(ui, &overview, &mut actions);
                ui.add_space(8.0);
                ui.columns(2, |columns| {
                    self.ages_ui(&mut columns[0], &overview);
                    self.chart_ui(&mut columns[1]);
                });
            });
        });
        self.confirm_ui(ui.ctx(), user, &mut actions);
        actions
    }

    fn bar(&mut self, ui: &mut Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.strong("Overview");
            ui.separator();
            let label = ui.label("Process version");
            let versions: Vec<(String, u32)> = self
                .overview
                .as_ref()
                .map(|o| o.versions.iter().map(|v| (v.process.clone(), v.version)).collect())
                .unwrap_or_default();
            let shown = self.chosen.as_ref().map_or_else(|| "all".to_owned(), |(p, v)| format!("{p} v{v}"));
            let mut chosen = self.chosen.clone();
            let combo = egui::ComboBox::from_id_salt("overview-version").selected_text(shown).show_ui(ui, |ui| {
                ui.selectable_value(&mut chosen, None, "all");
                for (process, version) in versions {
                    let text = format!("{process} v{version}");
                    ui.selectable_value(&mut chosen, Some((process, version)), text);
                }
            });
            combo.response.labelled_by(label.id);
            if chosen != self.chosen {
                self.choose(chosen);
            }
            ui.separator();
            let label = ui.label("Chart");
            let mut span = self.span;
            let combo = egui::ComboBox::from_id_salt("overview-span").selected_text(span.words()).show_ui(ui, |ui| {
                for option in Span::ALL {
                    ui.selectable_value(&mut span, option, option.words());
                }
            });
            combo.response.labelled_by(label.id);
            if span != self.span {
                self.span = span;
                self.ask_now = true;
            }
            ui.separator();
            if ui.button("Refresh").clicked() {
                self.refresh_now = true;
            }
        });
    }

    fn choose(&mut self, chosen: Option<(String, u32)>) {
        self.chosen = chosen;
        self.ask_now = true;
        self.fit = true;
    }

    fn counts_table(&mut self, ui: &mut Ui, overview: &Overview, actions: &mut Vec<OverviewAction>) {
        ui.heading("Instances by status");
        let statuses = InstanceStatus::ALL;
        TableBuilder::new(ui)
            .id_salt("overview-counts")
            .striped(true)
            .column(Column::auto().at_least(140.0))
            .columns(Column::auto().at_least(64.0), statuses.len())
            .column(Column::remainder().at_least(120.0))
            .header(20.0, |mut header| {
                header.col(|ui| {
                    ui.strong("Process");
                });
                for status in statuses {
                    header.col(|ui| {
                        ui.strong(status.name());
                    });
                }
                header.col(|ui| {
                    ui.strong("Pending items (oldest)");
                });
            })
            .body(|mut body| {
                for version in &overview.versions {
                    body.row(22.0, |mut row| {
                        row.col(|ui| {
                            let name = format!("{} v{}", version.process, version.version);
                            let chosen = self.chosen.as_ref() == Some(&(version.process.clone(), version.version));
                            if ui.selectable_label(chosen, name).clicked() {
                                self.choose(Some((version.process.clone(), version.version)));
                            }
                        });
                        for status in statuses {
                            row.col(|ui| {
                                let n = version.count(status);
                                if n == 0 {
                                    ui.weak("0");
                                    return;
                                }
                                let text = RichText::new(n.to_string()).color(status_color(status));
                                let response = ui.link(text);
                                let label = format!("{} v{} {}: {n}", version.process, version.version, status.name());
                                response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Link, true, &label));
                                if response
                                    .on_hover_text(format!("Show the {n} {} instance(s)", status.name()))
                                    .clicked()
                                {
                                    actions.push(OverviewAction::List(InstanceFilter {
                                        process: Some(version.process.clone()),
                                        version: Some(version.version),
                                        status: Some(status),
                                        ..InstanceFilter::default()
                                    }));
                                }
                            });
                        }
                        row.col(|ui| {
                            let total = version.pending.total();
                            match &version.oldest {
                                Some(oldest) => {
                                    ui.label(format!(
                                        "{total} (oldest {} at {}, {})",
                                        oldest.serial,
                                        oldest.activity,
                                        format_age(overview.now, oldest.created_at)
                                    ));
                                }
                                None => {
                                    ui.weak(total.to_string());
                                }
                            }
                        });
                    });
                }
            });
    }

    /// The versions the histogram and chart add up.
    fn chosen_versions<'a>(&self, overview: &'a Overview) -> Vec<&'a VersionOverview> {
        overview
            .versions
            .iter()
            .filter(|v| self.chosen.as_ref().is_none_or(|(p, n)| *p == v.process && *n == v.version))
            .collect()
    }

    fn ages_ui(&self, ui: &mut Ui, overview: &Overview) {
        ui.heading("Pending server items by age");
        let versions = self.chosen_versions(overview);
        let sum = |f: fn(&VersionOverview) -> u64| versions.iter().map(|v| f(v)).sum::<u64>();
        let buckets = [
            ("under 1 min", sum(|v| v.pending.under_minute)),
            ("under 1 h", sum(|v| v.pending.under_hour)),
            ("under 1 day", sum(|v| v.pending.under_day)),
            ("older", sum(|v| v.pending.older)),
        ];
        ui.label(buckets.iter().map(|(words, n)| format!("{words}: {n}")).collect::<Vec<_>>().join(" · "));
        let oldest = versions.iter().filter_map(|v| v.oldest.as_ref()).min_by_key(|o| o.created_at);
        match oldest {
            Some(oldest) => ui.label(format!(
                "Oldest: {} at {}, waiting {} (since {})",
                oldest.serial,
                oldest.activity,
                format_age(overview.now, oldest.created_at),
                format_time(oldest.created_at)
            )),
            None => ui.weak("Nothing pending."),
        };
        let bars: Vec<Bar> = buckets
            .iter()
            .enumerate()
            .map(|(i, (words, n))| Bar::new(i as f64, *n as f64).name(*words).width(0.7))
            .collect();
        let names = buckets.map(|(words, _)| words);
        Plot::new("overview-ages")
            .height(120.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .allow_boxed_zoom(false)
            .allow_double_click_reset(false)
            .show_x(false)
            .include_y(0.0)
            .x_axis_formatter(move |mark, _| {
                let index = mark.value.round();
                if (mark.value - index).abs() < 1e-6 && (0.0..4.0).contains(&index) {
                    names[index as usize].to_owned()
                } else {
                    String::new()
                }
            })
            .show(ui, |plot| plot.bar_chart(BarChart::new("pending", bars).color(theme::ASYNC_EVENT)));
    }

    fn chart_ui(&self, ui: &mut Ui) {
        let of = self.chosen.as_ref().map_or_else(|| "every process".to_owned(), |(p, v)| format!("{p} v{v}"));
        ui.heading(format!("Started and completed ({}, {of})", self.span.words().to_lowercase()));
        let Some((_, _, throughput)) = &self.throughput else {
            ui.spinner();
            return;
        };
        let end = throughput.buckets.last().map_or(0, |b| b.start);
        // Minutes before now on the x axis: the chart reads the same whatever
        // the time of day.
        let minutes = |start: Millis| (start - end) as f64 / 60_000.0;
        let started: Vec<[f64; 2]> = throughput.buckets.iter().map(|b| [minutes(b.start), b.started as f64]).collect();
        let completed: Vec<[f64; 2]> =
            throughput.buckets.iter().map(|b| [minutes(b.start), b.completed as f64]).collect();
        let (total_started, total_completed) =
            throughput.buckets.iter().fold((0, 0), |(s, c), b| (s + b.started, c + b.completed));
        ui.label(format!("{total_started} started, {total_completed} completed"));
        let span = self.span;
        Plot::new("overview-throughput")
            .height(120.0)
            .legend(Legend::default())
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .allow_boxed_zoom(false)
            .include_y(0.0)
            .x_axis_formatter(move |mark, _| match span {
                Span::Hour => format!("{:.0} min", mark.value),
                Span::Day => format!("{:.0} h", mark.value / 60.0),
                Span::Week => format!("{:.0} d", mark.value / 1440.0),
            })
            .show(ui, |plot| {
                plot.line(Line::new("started", PlotPoints::from(started)).color(flow::ACTIVE).width(2.0));
                plot.line(Line::new("completed", PlotPoints::from(completed)).color(flow::COMPLETED).width(2.0));
            });
    }

    fn incidents_ui(&mut self, ui: &mut Ui, overview: &Overview, actions: &mut Vec<OverviewAction>) {
        ui.heading("Incidents");
        ui.label(
            RichText::new(
                "Errors grouped by reason: the same activity and event, and the same message with numbers and \
                 quoted values masked.",
            )
            .weak(),
        );
        if let Some((words, succeeded)) = &self.report {
            ui.colored_label(if *succeeded { theme::SUCCESS } else { theme::ERROR }, words);
        }
        if let Some(running) = &self.running {
            let (settled, total) = running.progress.counts();
            let verb = match running.operation {
                IncidentOperation::Retry => "Retrying",
                IncidentOperation::Stop => "Stopping",
            };
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("{verb} at {}: {settled} of {total} instance(s)…", running.key.activity));
                // The instances in progress complete; no other begins.
                if running.progress.is_cancelled() {
                    ui.weak("Cancelling…");
                } else if ui.button("Cancel").on_hover_text("Begin no further instance").clicked() {
                    running.progress.cancel();
                }
            });
            if total > 0 {
                ui.add(egui::ProgressBar::new(settled as f32 / total as f32).show_percentage());
            }
            ui.ctx().request_repaint_after(Duration::from_millis(100));
        }
        let incidents: Vec<_> = overview
            .incidents
            .iter()
            .filter(|i| self.chosen.as_ref().is_none_or(|(p, v)| *p == i.key.process && *v == i.key.version))
            .collect();
        if incidents.is_empty() {
            ui.weak("No instance is in error.");
            return;
        }
        let busy = self.running.is_some();
        // A row is clicked to select it: labels must not take the click for
        // text selection.
        ui.style_mut().interaction.selectable_labels = false;
        TableBuilder::new(ui)
            .id_salt("overview-incidents")
            .striped(true)
            .sense(egui::Sense::click())
            .column(Column::auto().at_least(120.0))
            .column(Column::auto().at_least(140.0))
            .column(Column::remainder().at_least(200.0).clip(true))
            .column(Column::auto().at_least(50.0))
            .column(Column::auto().at_least(150.0))
            .column(Column::auto().at_least(150.0))
            .header(20.0, |mut header| {
                for title in ["Process", "Where", "Reason", "Count", "First seen", "Last seen"] {
                    header.col(|ui| {
                        ui.strong(title);
                    });
                }
            })
            .body(|mut body| {
                for incident in &incidents {
                    let selected = self.incident.as_ref() == Some(&incident.key);
                    body.row(22.0, |mut row| {
                        row.set_selected(selected);
                        row.col(|ui| {
                            ui.label(format!("{} v{}", incident.key.process, incident.key.version));
                        });
                        row.col(|ui| {
                            ui.label(format!("{} / {}", incident.key.activity, incident.key.event));
                        });
                        row.col(|ui| {
                            ui.label(&incident.key.pattern).on_hover_text(&incident.example);
                        });
                        row.col(|ui| {
                            ui.colored_label(theme::ERROR, incident.count.to_string());
                        });
                        row.col(|ui| {
                            ui.label(format_time(incident.first_at));
                        });
                        row.col(|ui| {
                            ui.label(format_time(incident.last_at));
                        });
                        if row.response().clicked() {
                            self.incident = Some(incident.key.clone());
                        }
                    });
                }
            });
        // The selected group's actions.
        let Some(selected) = incidents.iter().find(|i| Some(&i.key) == self.incident.as_ref()) else {
            ui.weak("Select an incident to retry, stop or open its instances.");
            return;
        };
        ui.horizontal(|ui| {
            ui.label(format!("{} instance(s): {}", selected.count, selected.example));
        });
        ui.horizontal(|ui| {
            ui.add_enabled_ui(!busy, |ui| {
                if ui.button("Retry all").on_hover_text("After fixing the data or the external system").clicked() {
                    self.confirm = Some((selected.key.clone(), IncidentOperation::Retry, selected.count));
                }
                if ui.button("Stop all").clicked() {
                    self.confirm = Some((selected.key.clone(), IncidentOperation::Stop, selected.count));
                }
            });
            if ui.button("Open one").on_hover_text(format!("Instance {}", selected.example_id)).clicked() {
                actions.push(OverviewAction::Open(selected.example_id));
                actions.push(OverviewAction::List(InstanceFilter {
                    process: Some(selected.key.process.clone()),
                    version: Some(selected.key.version),
                    status: Some(InstanceStatus::Error),
                    activity: Some(selected.key.activity.clone()),
                    ..InstanceFilter::default()
                }));
            }
        });
    }

    fn confirm_ui(&mut self, ctx: &egui::Context, user: &str, actions: &mut Vec<OverviewAction>) {
        let Some((key, operation, count)) = self.confirm.clone() else { return };
        let decided = super::confirmation_ui(ctx, "confirm-incident", |ui| {
            let verb = match operation {
                IncidentOperation::Retry => "Retry the failed step of",
                IncidentOperation::Stop => "Stop",
            };
            ui.label(format!(
                "{verb} the {count} instance(s) of {} v{} in error at {} / {}?",
                key.process, key.version, key.activity, key.event
            ));
            ui.label(RichText::new(format!("Each is recorded in its audit trail as done by {user}.")).weak());
            true
        });
        if let Some(confirmed) = decided {
            self.confirm = None;
            if confirmed {
                let progress = IncidentProgress::default();
                self.report = None;
                self.running = Some(Running { key: key.clone(), operation, progress: progress.clone() });
                actions.push(OverviewAction::OnIncident { key, operation, progress });
            }
        }
    }

    fn diagram_ui(&mut self, ui: &mut Ui, now: Millis, actions: &mut Vec<OverviewAction>) {
        // The panel keeps the height it is given, whatever is drawn in it
        // while the diagram is read (a panel shrinks to what it holds).
        ui.set_min_size(ui.available_size());
        let Some((process, version)) = self.diagram_version() else {
            ui.weak("The diagram of a process version shows here once one has instances.");
            return;
        };
        ui.horizontal(|ui| {
            ui.strong(format!("Diagram of {process} v{version}"));
            ui.weak("— instances active, waiting and in error at each activity; click one to list them");
            if ui.small_button("Fit").clicked() {
                self.fit = true;
            }
        });
        if let Some(error) = &self.diagram_error {
            ui.colored_label(theme::ERROR, error);
        }
        let Some(diagram) = self.diagram.as_ref().filter(|d| d.process == process && d.version == version) else {
            ui.spinner();
            return;
        };
        let clicked = heat::heat_ui(ui, &diagram.definition.draft, &diagram.counts, now, &mut self.view, &mut self.fit);
        if let Some(activity) = clicked {
            actions.push(OverviewAction::List(InstanceFilter {
                process: Some(process),
                version: Some(version),
                activity: Some(activity),
                ..InstanceFilter::default()
            }));
        }
    }
}

fn status_color(status: InstanceStatus) -> egui::Color32 {
    match status {
        InstanceStatus::Error => theme::ERROR,
        InstanceStatus::Completed => theme::SUCCESS,
        InstanceStatus::Stopped => theme::WARNING,
        InstanceStatus::Running | InstanceStatus::Active => flow::ACTIVE,
    }
}
