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
//! takes when it ends, so concurrent runs keep their lines apart. The operation
//! budget makes an endless loop an error instead of a hang.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

/// Re-exported so embedders can register script functions with the same version.
pub use rhai;
use rhai::packages::{Package, StandardPackage};
use rhai::{AST, Dynamic, EvalAltResult, FLOAT, INT, ImmutableString, Module, OptimizationLevel, Scope, Shared};
use rust_decimal::Decimal;

use crate::model::value::{FieldType, TypeMismatch, Value};

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

/// Compiles and runs scripts and rules with one configuration.
#[derive(Clone)]
pub struct ScriptHost {
    std_package: Shared<Module>,
    strict_comparisons: Shared<Module>,
    operation_budget: u64,
    extensions: Vec<ScriptExtension>,
    /// The engine runs use, built on first use (after every extension is in).
    runner: Arc<OnceLock<rhai::Engine>>,
}

thread_local! {
    /// Lines the script running on this thread passed to `log`.
    static SCRIPT_LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
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

    pub fn new(operation_budget: u64) -> ScriptHost {
        ScriptHost {
            std_package: StandardPackage::new().as_shared_module(),
            strict_comparisons: Shared::new(strict_comparisons()),
            operation_budget,
            extensions: Vec::new(),
            runner: Arc::new(OnceLock::new()),
        }
    }

    pub fn operation_budget(&self) -> u64 {
        self.operation_budget
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
        engine.set_max_call_levels(64);
        engine.set_max_expr_depths(128, 64);
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
        let scope = ScriptHost::compile_scope(field_names);
        let ast = self.compile_engine().compile_with_scope(&scope, source).map_err(compile_error)?;
        self.check_no_context_assignment(source, field_names)?;
        Ok(CompiledScript::new(ast, source))
    }

    /// Compiles a line rule: a single expression, no statements or assignments.
    pub fn compile_rule(&self, source: &str, field_names: &[&str]) -> Result<CompiledScript, CompileError> {
        let scope = ScriptHost::compile_scope(field_names);
        let ast = self.compile_engine().compile_expression_with_scope(&scope, source).map_err(compile_error)?;
        Ok(CompiledScript::new(ast, source))
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
    /// each checked against its type.
    pub fn run_script(
        &self,
        script: &CompiledScript,
        field_types: &BTreeMap<String, FieldType>,
        fields: &BTreeMap<String, Value>,
        context: &ScriptContext,
    ) -> Result<ScriptOutcome, ScriptFailure> {
        let capture = LogCapture::begin();
        let mut scope = ScriptHost::data_scope(script, fields, context);
        self.runner().run_ast_with_scope(&mut scope, &script.ast).map_err(|err| self.failure(&err))?;
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

    /// Evaluates a line rule to true or false.
    pub fn eval_rule(
        &self,
        rule: &CompiledScript,
        fields: &BTreeMap<String, Value>,
        context: &ScriptContext,
    ) -> Result<bool, ScriptFailure> {
        let mut scope = ScriptHost::data_scope(rule, fields, context);
        let result =
            self.runner().eval_ast_with_scope::<Dynamic>(&mut scope, &rule.ast).map_err(|err| self.failure(&err))?;
        result
            .as_bool()
            .map_err(|_| ScriptFailure::RuleNotBoolean { got: crate::model::value::describe_dynamic(&result) })
    }

    fn failure(&self, err: &EvalAltResult) -> ScriptFailure {
        match err.unwrap_inner() {
            EvalAltResult::ErrorTooManyOperations(_) => {
                ScriptFailure::BudgetExhausted { budget: self.operation_budget }
            }
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
}
