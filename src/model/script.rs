//! The script language of server events and line rules: Rhai, configured once.
//!
//! Data fields are plain variables in a script (`name = "initial"`), so scripts
//! read like the K2 code they replace. Context values (`serial`, `instance_id`,
//! `folio`, `activity`, `event`) are constants, and `log(text)` writes to the
//! instance's audit trail. Scripts are compiled with strict variables against the
//! process's field names, so a misspelt field is a compile error in the designer
//! rather than a surprise at run time.
//!
//! Runs share one `rhai::Engine`, built on first use: building one per run
//! (cheap as it is) was a tenth of the engine's time in the callback
//! benchmark. `log` writes to a buffer of the running thread, which a run
//! takes when it ends, so concurrent runs keep their lines apart.
//!
//! Three limits make a runaway script an error of its instance instead of a
//! hang or a crash of the whole program: an operation budget, a wall-clock
//! budget (checked every few operations against a [`ScriptClock`]), and
//! limits on how deep calls and expressions nest. Rhai evaluates by
//! recursion, so how deep a script may nest decides how much stack it needs;
//! every run and compile happens on a stack of at least [`SCRIPT_STACK`]
//! bytes (the running thread's own when it has that much left, else one
//! allocated for the run), so no thread's stack can overflow, whatever
//! thread runs the script.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Re-exported so embedders can register script functions with the same version.
pub use rhai;
use rhai::packages::{Package, StandardPackage};
use rhai::{AST, Dynamic, EvalAltResult, FLOAT, INT, ImmutableString, Module, OptimizationLevel, Scope, Shared};
use rust_decimal::Decimal;

use crate::model::value::{FieldType, TypeMismatch, Value};

/// How much stack a script at the deepest the limits allow may take, with
/// room to spare. Debug builds' frames are about five times larger: measured
/// at the limits, the deepest script took 12 MiB of stack in a debug build
/// and 2.3 MiB in a release build (README, "Scripting").
pub const SCRIPT_STACK: usize = if cfg!(debug_assertions) { 32 << 20 } else { 6 << 20 };

/// The stack for a thread that runs scripts often (the HTTP API's): enough
/// for [`SCRIPT_STACK`] and its callers, so that runs need no stack of their own.
pub const SCRIPT_THREAD_STACK: usize = SCRIPT_STACK + (2 << 20);

/// Operations between two looks at the clock.
const TIME_CHECK_INTERVAL: u64 = 16;

/// Runs `work` on a stack with at least [`SCRIPT_STACK`] bytes left: this
/// thread's, or one allocated for it.
fn on_script_stack<T>(work: impl FnOnce() -> T) -> T {
    stacker::maybe_grow(SCRIPT_STACK, SCRIPT_STACK, work)
}

/// Names scripts can read besides the data fields.
pub const CONTEXT_NAMES: [&str; 5] = ["serial", "instance_id", "folio", "activity", "event"];

/// A compiled script or line rule, and the words of its source.
///
/// A run's scope holds only the data fields and context values the source
/// names: putting every field of the process into it cost more than running
/// the script (over half of a run's time with four fields, and processes
/// have dozens). Rhai finds a variable only by a name written in
/// the script (`eval` cannot read variables under strict variables): a name
/// in an `is_def_var` text counts too, as long as it is written out rather
/// than put together while the script runs.
#[derive(Debug, Clone)]
pub struct CompiledScript {
    ast: AST,
    words: BTreeSet<String>,
}

impl CompiledScript {
    fn new(ast: AST, source: &str) -> CompiledScript {
        let words = source
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|word| !word.is_empty())
            .map(str::to_owned)
            .collect();
        CompiledScript { ast, words }
    }

    /// Whether the source names `name` (anywhere: code, strings, comments).
    fn names(&self, name: &str) -> bool {
        self.words.contains(name)
    }
}

/// Registers extra functions for scripts (an embedder's own integrations).
pub type ScriptExtension = Arc<dyn Fn(&mut rhai::Engine) + Send + Sync>;

/// A compile error with its place in the script, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", place(*.line, *.column))]
pub struct CompileError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

fn place(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}: "),
        (Some(line), None) => format!("line {line}: "),
        _ => String::new(),
    }
}

/// Why a script or rule failed at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptFailure {
    #[error("ran past its budget of {budget} operations (an endless loop?)")]
    BudgetExhausted { budget: u64 },
    #[error("calls nested more than {levels} levels deep (an endless recursion?)")]
    TooDeep { levels: usize },
    #[error("ran past its time budget of {} ms (an endless loop?)", .budget.as_millis())]
    TimeExhausted { budget: Duration },
    #[error("{0}")]
    Runtime(String),
    #[error("set field `{field}` to a wrong value: {mismatch}")]
    BadFieldValue { field: String, mismatch: TypeMismatch },
    #[error("rule gave {got}, not true or false")]
    RuleNotBoolean { got: String },
}

/// What a script's run changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScriptOutcome {
    /// Fields whose value differs after the run, in field order.
    pub changed: Vec<(String, Value)>,
    /// Lines the script passed to `log`, in order.
    pub logs: Vec<String>,
}

/// The values a script sees besides the data fields.
#[derive(Debug, Clone, Default)]
pub struct ScriptContext {
    pub serial: Option<String>,
    pub instance_id: i64,
    pub folio: String,
    pub activity: String,
    pub event: String,
}

/// Where the scripts' wall-clock budget reads the time: the system's
/// monotonic clock ([`SystemScriptClock`]), or a test's.
pub trait ScriptClock: Send + Sync {
    /// The time since a moment of the clock's choosing; never goes back.
    fn elapsed(&self) -> Duration;
}

/// The system's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemScriptClock;

impl ScriptClock for SystemScriptClock {
    fn elapsed(&self) -> Duration {
        static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
        ORIGIN.get_or_init(std::time::Instant::now).elapsed()
    }
}

/// Compiles and runs scripts and rules with one configuration.
#[derive(Clone)]
pub struct ScriptHost {
    std_package: Shared<Module>,
    strict_comparisons: Shared<Module>,
    operation_budget: u64,
    time_budget: Duration,
    clock: Arc<dyn ScriptClock>,
    extensions: Vec<ScriptExtension>,
    /// The engine runs use, built on first use (after every extension is in).
    runner: Arc<OnceLock<rhai::Engine>>,
}

thread_local! {
    /// Lines the script running on this thread passed to `log`.
    static SCRIPT_LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// When the run on this thread must end, on its host's [`ScriptClock`].
    static DEADLINE: Cell<Option<Duration>> = const { Cell::new(None) };
    /// Operations run on this thread, counted here because Rhai counts the
    /// operations of a closure that a built-in function calls (`map`,
    /// `sort`...) on their own, from zero at each call.
    static OPERATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Sets the deadline of one run, and gives back the deadline of a run it
/// interrupted (an extension that runs a script from inside one).
struct RunDeadline {
    outer: Option<Duration>,
}

impl RunDeadline {
    fn begin(clock: &dyn ScriptClock, budget: Duration) -> RunDeadline {
        let deadline = clock.elapsed().saturating_add(budget);
        RunDeadline { outer: DEADLINE.with(|cell| cell.replace(Some(deadline))) }
    }
}

impl Drop for RunDeadline {
    fn drop(&mut self) {
        DEADLINE.with(|cell| cell.set(self.outer));
    }
}

/// Collects the `log` lines of one run, and gives back the buffer of a run it
/// interrupted (an extension that runs a script from inside one).
struct LogCapture {
    outer: Option<Vec<String>>,
}

impl LogCapture {
    fn begin() -> LogCapture {
        LogCapture { outer: Some(SCRIPT_LOG.with(|log| std::mem::take(&mut *log.borrow_mut()))) }
    }

    /// The run's lines.
    fn end(mut self) -> Vec<String> {
        let outer = self.outer.take().unwrap_or_default();
        SCRIPT_LOG.with(|log| std::mem::replace(&mut *log.borrow_mut(), outer))
    }
}

impl Drop for LogCapture {
    // A run that failed drops its lines, so the next run does not inherit them.
    fn drop(&mut self) {
        if let Some(outer) = self.outer.take() {
            SCRIPT_LOG.with(|log| *log.borrow_mut() = outer);
        }
    }
}

impl std::fmt::Debug for ScriptHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptHost")
            .field("operation_budget", &self.operation_budget)
            .field("time_budget", &self.time_budget)
            .field("extensions", &self.extensions.len())
            .finish()
    }
}

impl Default for ScriptHost {
    fn default() -> Self {
        ScriptHost::new(ScriptHost::DEFAULT_BUDGET)
    }
}

impl ScriptHost {
    /// About a few tens of milliseconds of work: plenty for glue code, short enough
    /// that an endless loop fails fast.
    pub const DEFAULT_BUDGET: u64 = 1_000_000;

    /// How deep script functions may call each other (Rhai's own limit in
    /// release builds).
    pub const MAX_CALL_LEVELS: usize = 64;
    /// How deep expressions may nest at the top of a script and inside its
    /// functions (Rhai's own limits in release builds). With the call levels,
    /// these decide how much stack a script can take: see [`SCRIPT_STACK`].
    pub const MAX_EXPR_DEPTH: usize = 64;
    pub const MAX_FUNCTION_EXPR_DEPTH: usize = 32;

    pub fn new(operation_budget: u64) -> ScriptHost {
        ScriptHost {
            std_package: StandardPackage::new().as_shared_module(),
            strict_comparisons: Shared::new(strict_comparisons()),
            operation_budget,
            time_budget: ScriptHost::DEFAULT_TIME_BUDGET,
            clock: Arc::new(SystemScriptClock),
            extensions: Vec::new(),
            runner: Arc::new(OnceLock::new()),
        }
    }

    pub fn operation_budget(&self) -> u64 {
        self.operation_budget
    }

    /// The same host with another operation budget.
    pub fn with_operation_budget(mut self, budget: u64) -> ScriptHost {
        self.operation_budget = budget;
        self.runner = Arc::new(OnceLock::new());
        self
    }

    /// How long a script or rule may run when its process sets no budget of
    /// its own (`script_time_limit_ms`): ample for glue code, and far below
    /// the 30 s other writers wait for the write lock, under which a script
    /// may run.
    pub const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(2);

    /// The longest budget a process may give its scripts, for the same reason.
    pub const MAX_TIME_BUDGET: Duration = Duration::from_secs(10);

    pub fn time_budget(&self) -> Duration {
        self.time_budget
    }

    /// The same host with another default time budget.
    pub fn with_time_budget(mut self, budget: Duration) -> ScriptHost {
        self.time_budget = budget;
        self.runner = Arc::new(OnceLock::new());
        self
    }

    /// Replaces the clock the time budget is measured on (a test's clock).
    pub fn with_clock(mut self, clock: Arc<dyn ScriptClock>) -> ScriptHost {
        self.clock = clock;
        self.runner = Arc::new(OnceLock::new());
        self
    }

    /// Adds functions scripts may call, e.g. an embedder's client for an external
    /// system. Unknown functions compile (Rhai resolves calls at run time), so
    /// validation does not need them.
    pub fn with_extension(mut self, extension: ScriptExtension) -> ScriptHost {
        self.extensions.push(extension);
        self.runner = Arc::new(OnceLock::new());
        self
    }

    /// Whether a script run by this host may reach the outside world, and so
    /// hand an asynchronous event's serial to a system that calls back before
    /// the script has ended. The built-in functions cannot; an embedder's
    /// extensions may.
    pub fn can_call_out(&self) -> bool {
        !self.extensions.is_empty()
    }

    fn engine(&self) -> rhai::Engine {
        let mut engine = rhai::Engine::new_raw();
        engine.register_global_module(self.std_package.clone());
        engine.register_global_module(self.strict_comparisons.clone());
        engine.set_max_operations(self.operation_budget);
        let clock = self.clock.clone();
        engine.on_progress(move |_| {
            let operations = OPERATIONS.with(|count| {
                let next = count.get().wrapping_add(1);
                count.set(next);
                next
            });
            if !operations.is_multiple_of(TIME_CHECK_INTERVAL) {
                return None;
            }
            let deadline = DEADLINE.with(Cell::get)?;
            (clock.elapsed() >= deadline).then_some(Dynamic::UNIT)
        });
        engine.set_max_call_levels(ScriptHost::MAX_CALL_LEVELS);
        engine.set_max_expr_depths(ScriptHost::MAX_EXPR_DEPTH, ScriptHost::MAX_FUNCTION_EXPR_DEPTH);
        engine.set_max_string_size(1 << 20);
        engine.set_max_array_size(100_000);
        engine.set_max_map_size(100_000);
        engine.set_strict_variables(true);
        // Without this, operators on built-in types skip function lookup and the
        // strict comparisons below would never be consulted.
        engine.set_fast_operators(false);
        engine.register_fn("log", |text: &str| {
            SCRIPT_LOG.with(|log| log.borrow_mut().push(text.to_owned()));
        });
        for extension in &self.extensions {
            extension(&mut engine);
        }
        engine
    }

    /// Rhai checks assignments to constants only for constants the script
    /// declares itself, so compile once more with the context values declared
    /// as constants in front, on the first line so line numbers stay true.
    fn check_no_context_assignment(&self, source: &str, field_names: &[&str]) -> Result<(), CompileError> {
        let prefix: String = CONTEXT_NAMES.iter().map(|name| format!("const {name} = ();")).collect();
        let scope = ScriptHost::compile_scope(field_names);
        match self.compile_engine().compile_with_scope(&scope, format!("{prefix}{source}")) {
            Err(err) if matches!(*err.0, rhai::ParseErrorType::AssignmentToConstant(_)) => {
                let mut error = compile_error(err);
                if error.line == Some(1) {
                    error.column = error.column.map(|c| c.saturating_sub(prefix.len()));
                }
                Err(error)
            }
            _ => Ok(()),
        }
    }

    fn runner(&self) -> &rhai::Engine {
        self.runner.get_or_init(|| self.engine())
    }

    fn compile_engine(&self) -> rhai::Engine {
        let mut engine = self.engine();
        engine.set_optimization_level(OptimizationLevel::None);
        engine
    }

    /// Whether a data field with this name can be used in scripts: not a
    /// keyword or reserved word of the language.
    pub fn is_usable_name(&self, name: &str) -> bool {
        self.compile_script(&format!("{name} = {name};"), &[name]).is_ok()
    }

    fn compile_scope(field_names: &[&str]) -> Scope<'static> {
        let mut scope = Scope::new();
        for name in field_names {
            scope.push_dynamic(name.to_string(), Dynamic::UNIT);
        }
        // Constants, so that assigning to one is a compile error. Compiling
        // without optimisation keeps the placeholder values out of the AST.
        for name in CONTEXT_NAMES {
            scope.push_constant_dynamic(name, Dynamic::UNIT);
        }
        scope
    }

    /// Compiles an event script against the process's field names.
    pub fn compile_script(&self, source: &str, field_names: &[&str]) -> Result<CompiledScript, CompileError> {
        on_script_stack(|| {
            let scope = ScriptHost::compile_scope(field_names);
            let ast = self.compile_engine().compile_with_scope(&scope, source).map_err(compile_error)?;
            self.check_no_context_assignment(source, field_names)?;
            Ok(CompiledScript::new(ast, source))
        })
    }

    /// Compiles a line rule: a single expression, no statements or assignments.
    pub fn compile_rule(&self, source: &str, field_names: &[&str]) -> Result<CompiledScript, CompileError> {
        on_script_stack(|| {
            let scope = ScriptHost::compile_scope(field_names);
            let ast = self.compile_engine().compile_expression_with_scope(&scope, source).map_err(compile_error)?;
            Ok(CompiledScript::new(ast, source))
        })
    }

    /// The variables a run of `script` starts with: the data fields and
    /// context values its source names, and no others.
    fn data_scope(
        script: &CompiledScript,
        fields: &BTreeMap<String, Value>,
        context: &ScriptContext,
    ) -> Scope<'static> {
        let mut scope = Scope::new();
        for (name, value) in fields.iter().filter(|(name, _)| script.names(name)) {
            scope.push_dynamic(name.clone(), value.to_dynamic());
        }
        if script.names("serial") {
            let serial = context.serial.clone().unwrap_or_default();
            scope.push_constant("serial", serial);
        }
        if script.names("instance_id") {
            scope.push_constant("instance_id", context.instance_id);
        }
        if script.names("folio") {
            scope.push_constant("folio", context.folio.clone());
        }
        if script.names("activity") {
            scope.push_constant("activity", context.activity.clone());
        }
        if script.names("event") {
            scope.push_constant("event", context.event.clone());
        }
        scope
    }

    /// Runs an event script over the instance's data. `fields` gives each field's
    /// type and current value; the outcome lists the fields the script changed,
    /// each checked against its type. The host's time budget applies.
    pub fn run_script(
        &self,
        script: &CompiledScript,
        field_types: &BTreeMap<String, FieldType>,
        fields: &BTreeMap<String, Value>,
        context: &ScriptContext,
    ) -> Result<ScriptOutcome, ScriptFailure> {
        self.run_script_within(script, field_types, fields, context, self.time_budget)
    }

    /// [`ScriptHost::run_script`] with a time budget of its own (a process's).
    pub fn run_script_within(
        &self,
        script: &CompiledScript,
        field_types: &BTreeMap<String, FieldType>,
        fields: &BTreeMap<String, Value>,
        context: &ScriptContext,
        budget: Duration,
    ) -> Result<ScriptOutcome, ScriptFailure> {
        let capture = LogCapture::begin();
        let mut scope = ScriptHost::data_scope(script, fields, context);
        on_script_stack(|| {
            let _deadline = RunDeadline::begin(self.clock.as_ref(), budget);
            self.runner().run_ast_with_scope(&mut scope, &script.ast)
        })
        .map_err(|err| self.failure(&err, budget))?;
        let logs = capture.end();
        let mut changed = Vec::new();
        for (name, before) in fields {
            let Some(after) = scope.get(name) else {
                continue;
            };
            let Some(field_type) = field_types.get(name) else {
                continue;
            };
            let after = Value::from_dynamic(*field_type, after)
                .map_err(|mismatch| ScriptFailure::BadFieldValue { field: name.clone(), mismatch })?;
            if &after != before {
                changed.push((name.clone(), after));
            }
        }
        Ok(ScriptOutcome { changed, logs })
    }

    /// Evaluates a line rule to true or false, within the host's time budget.
    pub fn eval_rule(
        &self,
        rule: &CompiledScript,
        fields: &BTreeMap<String, Value>,
        context: &ScriptContext,
    ) -> Result<bool, ScriptFailure> {
        self.eval_rule_within(rule, fields, context, self.time_budget)
    }

    /// [`ScriptHost::eval_rule`] with a time budget of its own (a process's).
    pub fn eval_rule_within(
        &self,
        rule: &CompiledScript,
        fields: &BTreeMap<String, Value>,
        context: &ScriptContext,
        budget: Duration,
    ) -> Result<bool, ScriptFailure> {
        let mut scope = ScriptHost::data_scope(rule, fields, context);
        let result = on_script_stack(|| {
            let _deadline = RunDeadline::begin(self.clock.as_ref(), budget);
            self.runner().eval_ast_with_scope::<Dynamic>(&mut scope, &rule.ast)
        })
        .map_err(|err| self.failure(&err, budget))?;
        result
            .as_bool()
            .map_err(|_| ScriptFailure::RuleNotBoolean { got: crate::model::value::describe_dynamic(&result) })
    }

    fn failure(&self, err: &EvalAltResult, time_budget: Duration) -> ScriptFailure {
        match err.unwrap_inner() {
            EvalAltResult::ErrorTooManyOperations(_) => {
                ScriptFailure::BudgetExhausted { budget: self.operation_budget }
            }
            // Only the progress callback terminates a run: its time is up.
            EvalAltResult::ErrorTerminated(..) => ScriptFailure::TimeExhausted { budget: time_budget },
            EvalAltResult::ErrorStackOverflow(_) => ScriptFailure::TooDeep { levels: ScriptHost::MAX_CALL_LEVELS },
            other => {
                let position = err.position();
                let message = other.to_string();
                // Rhai's message repeats the position; keep ours, which says "line".
                let message = match message.rfind(" (line ") {
                    Some(cut) => message[..cut].to_owned(),
                    None => message,
                };
                match position.line() {
                    Some(line) => ScriptFailure::Runtime(format!("line {line}: {message}")),
                    None => ScriptFailure::Runtime(message),
                }
            }
        }
    }
}

/// Comparing values of different kinds (`name > 3`, `n == "3"`) is a mistake
/// in a rule, but Rhai answers `false` for it. These overloads make it an error
/// that validation and the instance's trail can show.
fn strict_comparisons() -> Module {
    macro_rules! forbid {
        ($module:expr, $a:ty, $b:ty, $left:expr, $right:expr) => {
            for operator in ["==", "!=", "<", ">", "<=", ">="] {
                let message = format!("cannot compare {} with {} (`{operator}`)", $left, $right);
                $module.set_native_fn(operator, move |_: $a, _: $b| -> Result<bool, Box<EvalAltResult>> {
                    Err(message.clone().into())
                });
            }
        };
    }
    let mut module = Module::new();
    forbid!(module, ImmutableString, INT, "a string", "a number");
    forbid!(module, INT, ImmutableString, "a number", "a string");
    forbid!(module, ImmutableString, FLOAT, "a string", "a number");
    forbid!(module, FLOAT, ImmutableString, "a number", "a string");
    forbid!(module, ImmutableString, Decimal, "a string", "a number");
    forbid!(module, Decimal, ImmutableString, "a number", "a string");
    forbid!(module, ImmutableString, bool, "a string", "true/false");
    forbid!(module, bool, ImmutableString, "true/false", "a string");
    forbid!(module, bool, INT, "true/false", "a number");
    forbid!(module, INT, bool, "a number", "true/false");
    forbid!(module, bool, Decimal, "true/false", "a number");
    forbid!(module, Decimal, bool, "a number", "true/false");
    module
}

fn compile_error(err: rhai::ParseError) -> CompileError {
    let position = err.position();
    CompileError { line: position.line(), column: position.position(), message: err.0.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> (BTreeMap<String, FieldType>, BTreeMap<String, Value>) {
        let types = BTreeMap::from([("name".to_owned(), FieldType::String), ("n".to_owned(), FieldType::Integer)]);
        let values =
            BTreeMap::from([("name".to_owned(), Value::String("x".into())), ("n".to_owned(), Value::Integer(1))]);
        (types, values)
    }

    /// A run's scope holds only what the source names; what it names in
    /// strings (interpolation, `is_def_var`) counts, so scripts see the same
    /// variables as with every field in scope.
    #[test]
    fn a_script_sees_every_variable_its_source_names_however_it_names_it() {
        let host = ScriptHost::default();
        let mut types = BTreeMap::new();
        let mut values = BTreeMap::new();
        for i in 0..40 {
            types.insert(format!("f{i}"), FieldType::Integer);
            values.insert(format!("f{i}"), Value::Integer(i));
        }
        let names: Vec<String> = types.keys().cloned().collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let context = ScriptContext { serial: Some("7_2".into()), folio: "PO-1".into(), ..ScriptContext::default() };
        let source = "f4 = f1 + f2; \
                      log(`${f5} ${folio} ${serial}`); \
                      f7 = if is_def_var(\"f6\") { f6 } else { -1 }; \
                      f8 = if is_def_var(\"f9\") { 1 } else { 0 };";
        let script = host.compile_script(source, &names).unwrap();
        let outcome = host.run_script(&script, &types, &values, &context).unwrap();
        assert_eq!(
            outcome.changed,
            [
                ("f4".to_owned(), Value::Integer(3)),
                ("f7".to_owned(), Value::Integer(6)),
                ("f8".to_owned(), Value::Integer(1)),
            ]
        );
        assert_eq!(outcome.logs, ["5 PO-1 7_2"]);
        let rule = host.compile_rule("f39 > 38 && folio == \"PO-1\"", &names).unwrap();
        assert_eq!(host.eval_rule(&rule, &values, &context), Ok(true));
    }

    #[test]
    fn misspelt_field_is_a_compile_error_with_position() {
        let host = ScriptHost::default();
        let err = host.compile_script("let a = 1;\nnmae = \"x\";", &["name"]).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("nmae"), "{}", err.message);
    }

    #[test]
    fn script_changes_fields_and_logs() {
        let host = ScriptHost::default();
        let (types, values) = fields();
        let ast = host.compile_script("n += 41; log(`serial ${serial}`);", &["name", "n"]).unwrap();
        let context = ScriptContext { serial: Some("7_2".into()), ..ScriptContext::default() };
        let outcome = host.run_script(&ast, &types, &values, &context).unwrap();
        assert_eq!(outcome.changed, vec![("n".to_owned(), Value::Integer(42))]);
        assert_eq!(outcome.logs, vec!["serial 7_2".to_owned()]);
    }

    #[test]
    fn a_failed_run_leaves_no_log_lines_to_the_next() {
        let host = ScriptHost::default();
        let (types, values) = fields();
        let failing = host.compile_script("log(\"before the error\"); n = \"text\";", &["name", "n"]).unwrap();
        let context = ScriptContext::default();
        assert!(host.run_script(&failing, &types, &values, &context).is_err());
        let logging = host.compile_script("log(\"mine\");", &["name", "n"]).unwrap();
        let outcome = host.run_script(&logging, &types, &values, &context).unwrap();
        assert_eq!(outcome.logs, vec!["mine".to_owned()]);
    }

    #[test]
    fn concurrent_runs_keep_their_log_lines_apart() {
        let host = ScriptHost::default();
        let (types, values) = fields();
        let ast = host.compile_script("for i in 0..200 { log(`${instance_id}`); }", &["name", "n"]).unwrap();
        std::thread::scope(|scope| {
            for instance_id in 1..=4 {
                let (host, ast, types, values) = (&host, &ast, &types, &values);
                scope.spawn(move || {
                    let context = ScriptContext { instance_id, ..ScriptContext::default() };
                    for _ in 0..20 {
                        let outcome = host.run_script(ast, types, values, &context).unwrap();
                        assert_eq!(outcome.logs, vec![instance_id.to_string(); 200]);
                    }
                });
            }
        });
    }

    #[test]
    fn endless_loop_exhausts_the_budget() {
        let host = ScriptHost::new(10_000);
        let (types, values) = fields();
        let ast = host.compile_script("loop { n += 1; }", &["name", "n"]).unwrap();
        let err = host.run_script(&ast, &types, &values, &ScriptContext::default()).unwrap_err();
        assert_eq!(err, ScriptFailure::BudgetExhausted { budget: 10_000 });
    }

    #[test]
    fn wrong_type_written_to_a_field_fails() {
        let host = ScriptHost::default();
        let (types, values) = fields();
        let ast = host.compile_script("n = \"many\";", &["name", "n"]).unwrap();
        let err = host.run_script(&ast, &types, &values, &ScriptContext::default()).unwrap_err();
        assert!(matches!(err, ScriptFailure::BadFieldValue { ref field, .. } if field == "n"), "{err}");
    }

    #[test]
    fn rules_are_expressions_and_must_be_boolean() {
        let host = ScriptHost::default();
        let (_, values) = fields();
        assert!(host.compile_rule("name = \"x\"", &["name"]).is_err());
        let ast = host.compile_rule("name == \"x\"", &["name"]).unwrap();
        assert_eq!(host.eval_rule(&ast, &values, &ScriptContext::default()), Ok(true));
        let ast = host.compile_rule("n + 1", &["name", "n"]).unwrap();
        assert!(matches!(
            host.eval_rule(&ast, &values, &ScriptContext::default()),
            Err(ScriptFailure::RuleNotBoolean { .. })
        ));
    }

    #[test]
    fn only_a_host_with_extensions_can_call_out() {
        let (types, values) = fields();
        let script = "name = external_system();";
        let context = ScriptContext::default();

        for host in [ScriptHost::default(), ScriptHost::new(10_000)] {
            assert!(!host.can_call_out());
            // Nothing outside is reachable from the built-in functions.
            let ast = host.compile_script(script, &["name", "n"]).unwrap();
            let err = host.run_script(&ast, &types, &values, &context).unwrap_err();
            assert!(matches!(err, ScriptFailure::Runtime(ref message) if message.contains("external_system")), "{err}");
        }

        let host = ScriptHost::default().with_extension(Arc::new(|engine: &mut rhai::Engine| {
            engine.register_fn("external_system", || "answered".to_owned());
        }));
        assert!(host.can_call_out());
        let ast = host.compile_script(script, &["name", "n"]).unwrap();
        let outcome = host.run_script(&ast, &types, &values, &context).unwrap();
        assert_eq!(outcome.changed, vec![("name".to_owned(), Value::String("answered".into()))]);
    }

    /// The script: each call nests its recursive call in parentheses.
    fn nested_recursion(depth: usize) -> String {
        let nested = format!("{}f(n - 1){}", "(".repeat(10), " + 1)".repeat(10));
        format!("fn f(n) {{ if n <= 0 {{ 0 }} else {{ {nested} }} }}\nname = f({depth}).to_string();")
    }

    /// Scripts that recurse without end, each frame as heavy as the limits
    /// on expressions allow, run on a thread with a stack far smaller than
    /// any that flowdesk runs scripts on (tokio's blocking threads have
    /// 2 MiB, test threads too): each reaches the deepest call level and
    /// fails with a clear reason instead of overflowing the thread's stack.
    #[test]
    fn the_deepest_scripts_fail_cleanly_on_a_small_stack() {
        let host = ScriptHost::default();
        let (types, values) = fields();
        let switches = format!("{}f(n - 1){}", "switch n { _ => ".repeat(10), " }".repeat(10));
        let sources = [
            nested_recursion(1000),
            format!("fn f(n) {{ {switches} }}\nname = f(1000).to_string();"),
            format!(
                "fn f(n) {{ {}Fn(\"f\").call(n - 1){} }}\nname = ({}f(1000){}).to_string();",
                "(".repeat(10),
                " + 1)".repeat(10),
                "(".repeat(20),
                " + 1)".repeat(20)
            ),
            "fn f(n) { [n].map(|x| f(x + 1))[0] }\nname = f(0).to_string();".to_owned(),
        ];
        let scripts: Vec<CompiledScript> =
            sources.iter().map(|source| host.compile_script(source, &["name", "n"]).unwrap()).collect();
        let small = std::thread::Builder::new().stack_size(256 * 1024);
        let results = small
            .spawn(move || {
                scripts
                    .iter()
                    .map(|script| host.run_script(script, &types, &values, &ScriptContext::default()))
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap();
        for (source, result) in sources.iter().zip(results) {
            match result {
                Err(ScriptFailure::TooDeep { levels }) => assert_eq!(levels, ScriptHost::MAX_CALL_LEVELS),
                other => panic!("{source}: {other:?}"),
            }
        }
    }

    /// A clock that moves a millisecond each time it is read, so that a
    /// script's time is counted in clock reads, whatever the machine's speed.
    #[derive(Default)]
    struct SteppingClock(std::sync::atomic::AtomicU64);

    impl SteppingClock {
        fn reads(&self) -> u64 {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl ScriptClock for SteppingClock {
        fn elapsed(&self) -> Duration {
            Duration::from_millis(self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
        }
    }

    #[test]
    fn a_script_past_its_time_budget_is_stopped() {
        let clock = Arc::new(SteppingClock::default());
        let host = ScriptHost::default().with_clock(clock.clone()).with_time_budget(Duration::from_millis(50));
        let (types, values) = fields();
        // Few operations, yet slow: every push checks the size of the whole array.
        let slow = "let a = []; for i in 0..5000 { a.push([]); } name = a.len().to_string();";
        let slow = host.compile_script(slow, &["name", "n"]).unwrap();
        let err = host.run_script(&slow, &types, &values, &ScriptContext::default()).unwrap_err();
        assert_eq!(err, ScriptFailure::TimeExhausted { budget: Duration::from_millis(50) });
        assert_eq!(err.to_string(), "ran past its time budget of 50 ms (an endless loop?)");
        assert!(clock.reads() <= 52, "stopped once the budget ran out, after {} reads", clock.reads());

        // The budget is per run: a short script after it is not charged for it.
        let quick = host.compile_script("n += 1;", &["name", "n"]).unwrap();
        let outcome = host.run_script(&quick, &types, &values, &ScriptContext::default()).unwrap();
        assert_eq!(outcome.changed, [("n".to_owned(), Value::Integer(2))]);
        // Rules too.
        let long = format!("\"{}\".to_chars().map(|c| c).len() > 0", "a".repeat(5000));
        let rule = host.compile_rule(&long, &[]).unwrap();
        let err = host.eval_rule(&rule, &values, &ScriptContext::default()).unwrap_err();
        assert!(matches!(err, ScriptFailure::TimeExhausted { .. }), "{err}");
    }
}
