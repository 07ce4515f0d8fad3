//! `flowdesk bench sql-floor`: the most callback lifecycles per second that
//! any engine writing flowdesk's schema could carry on this disk and CPU.
//!
//! One lifecycle runs through the engine as in `bench callback`; its rows
//! are then written again for N new instances by one thread with the
//! engine's own statements and nothing else (`store::floor`). The figure is
//! a ceiling for `bench callback`, not a rival to it: it tells how much of a
//! lifecycle's cost is the schema's and how much the engine's. It is taken
//! for the schema as shipped, without the instance list's indexes, which
//! shows what keeping the monitor's list off the acknowledgement path would
//! be worth, and without the overview's aggregates (their triggers), which
//! shows what keeping them in the writing transaction costs. Every replayed instance is then read back through the engine
//! and checked as the scenario checks its own.

use std::path::PathBuf;

use crate::bench::{self, BenchError, Scratch, Unverified};
use crate::store::{Durability, FloorSchema, REPLAY_BATCH};

#[derive(Debug, Clone)]
pub struct FloorOptions {
    pub instances: usize,
    pub durability: Durability,
    /// Where the temporary databases go.
    pub folder: PathBuf,
}

#[derive(Debug, Clone)]
pub struct FloorReport {
    pub schema: FloorSchema,
    pub instances: usize,
    pub seconds: f64,
    pub durability: Durability,
    /// Replayed instances the engine does not read back as completed.
    pub unverified: Vec<Unverified>,
}

impl FloorReport {
    pub fn per_s(&self) -> f64 {
        self.instances as f64 / self.seconds
    }

    pub fn line(&self) -> String {
        format!(
            "engine=flowdesk bench=sql-floor schema={} n={} seconds={:.3} total_per_s={:.0} batch={} sync={}",
            self.schema.name(),
            self.instances,
            self.seconds,
            self.per_s(),
            REPLAY_BATCH,
            self.durability.name()
        )
    }
}

/// Measures each schema, each on a fresh database.
pub fn run(options: &FloorOptions) -> Result<Vec<FloorReport>, BenchError> {
    [FloorSchema::AsShipped, FloorSchema::WithoutInstanceList, FloorSchema::WithoutOverview]
        .into_iter()
        .map(|schema| run_one(options, schema))
        .collect()
}

fn run_one(options: &FloorOptions, schema: FloorSchema) -> Result<FloorReport, BenchError> {
    let scratch = Scratch::new(&options.folder)?;
    let path = scratch.db_path();
    let (completed, waiting) = {
        let runtime = bench::open(&path, options.durability)?;
        let engine = runtime.engine();
        let process = bench::deploy(engine)?;
        bench::start_waiting(engine, &process, 2, 1)?;
        let items = bench::pending_exactly(engine, &process, 2)?;
        let (Some(first), Some(second)) = (items.first(), items.get(1)) else {
            return Err(BenchError::MissingSerials { expected: 2, found: items.len() });
        };
        engine.finish(bench::USER, first.serial, &bench::callback_data())?;
        (first.instance_id, second.instance_id)
    };
    let replayed =
        crate::store::replay_lifecycles(&path, options.durability, schema, completed, waiting, options.instances)?;
    let runtime = bench::open(&path, options.durability)?;
    let engine = runtime.engine();
    let unverified = bench::verify_completed(engine, replayed.ids.clone())?;
    Ok(FloorReport {
        schema,
        instances: options.instances,
        seconds: replayed.took.as_secs_f64(),
        durability: options.durability,
        unverified,
    })
}
