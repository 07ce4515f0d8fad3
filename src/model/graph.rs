//! The process graph: activities as nodes, lines as edges, held in `petgraph`.
//!
//! Node `i` is activity `i` of the definition and edge weights are line indices,
//! so results map straight back to the draft. Lines whose ends do not exist are
//! left out (validation reports them separately).

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::Dfs;

use crate::model::definition::{LineDraft, ProcessDraft};

#[derive(Debug, Clone)]
pub struct ProcessGraph {
    graph: DiGraph<usize, usize>,
}

impl ProcessGraph {
    pub fn new(draft: &ProcessDraft) -> ProcessGraph {
        ProcessGraph::with_lines(draft, |_| true)
    }

    /// The graph of the lines `keep` accepts (e.g. only those without a rule).
    pub fn with_lines(draft: &ProcessDraft, keep: impl Fn(&LineDraft) -> bool) -> ProcessGraph {
        let mut graph = DiGraph::with_capacity(draft.activities.len(), draft.lines.len());
        for index in 0..draft.activities.len() {
            graph.add_node(index);
        }
        let position = |id: &str| draft.activities.iter().position(|a| a.id == id);
        for (line_index, line) in draft.lines.iter().enumerate().filter(|(_, line)| keep(line)) {
            if let (Some(from), Some(to)) = (position(&line.from), position(&line.to)) {
                graph.add_edge(NodeIndex::new(from), NodeIndex::new(to), line_index);
            }
        }
        ProcessGraph { graph }
    }

    /// Activity indices reachable from `start`, including it, in ascending order.
    pub fn reachable_from(&self, start: usize) -> Vec<usize> {
        let mut seen = vec![false; self.graph.node_count()];
        if start >= seen.len() {
            return Vec::new();
        }
        let mut dfs = Dfs::new(&self.graph, NodeIndex::new(start));
        while let Some(node) = dfs.next(&self.graph) {
            seen[node.index()] = true;
        }
        seen.iter().enumerate().filter(|(_, s)| **s).map(|(i, _)| i).collect()
    }

    /// Line indices arriving at an activity, in line order.
    pub fn incoming_lines(&self, activity: usize) -> Vec<usize> {
        let mut lines: Vec<usize> = self
            .graph
            .edges_directed(NodeIndex::new(activity), petgraph::Direction::Incoming)
            .map(|edge| *edge.weight())
            .collect();
        lines.sort_unstable();
        lines
    }

    /// Line indices leaving an activity, in line order (the order rules run in).
    pub fn outgoing_lines(&self, activity: usize) -> Vec<usize> {
        let mut lines: Vec<usize> = self
            .graph
            .edges_directed(NodeIndex::new(activity), petgraph::Direction::Outgoing)
            .map(|edge| *edge.weight())
            .collect();
        lines.sort_unstable();
        lines
    }

    /// Groups of activities that can follow each other round in a loop, each
    /// sorted, as activity indices. A single activity counts only with a self-line.
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let mut cycles: Vec<Vec<usize>> = tarjan_scc(&self.graph)
            .into_iter()
            .filter(|component| component.len() > 1 || self.graph.contains_edge(component[0], component[0]))
            .map(|component| {
                let mut indices: Vec<usize> = component.into_iter().map(|n| n.index()).collect();
                indices.sort_unstable();
                indices
            })
            .collect();
        cycles.sort();
        cycles
    }
}
