//! The callback client API, in the spirit of K2's `SourceCode.Workflow.Client`:
//! open a connection as a user, open a server item by serial, read and set its
//! instance's data fields, finish it.
//!
//! ```no_run
//! use flowdesk::client::Connection;
//!
//! # fn main() -> Result<(), flowdesk::engine::EngineError> {
//! let connection = Connection::open("flowdesk.db", "biztalk")?;
//! let mut item = connection.open_server_item("1042_7")?;
//! item.set_field("name", "call back value")?;
//! let finished = item.finish()?;
//! println!("instance {} is now {}", finished.progress.instance_id, finished.progress.status);
//! # Ok(())
//! # }
//! ```

use std::path::Path;
use std::sync::Arc;

use crate::engine::{EngineError, FieldInput, Finished, InstanceSummary, OpenedItem, ServerItem};
use crate::model::{FieldType, Value};
use crate::runtime::{Runtime, RuntimeEngine, RuntimeOptions};

/// A connection to a flowdesk database, acting as one user.
pub struct Connection {
    runtime: Arc<Runtime>,
    user: String,
}

impl Connection {
    /// Opens the database at `path` (created if missing) as `user`. Its
    /// runtime beats while a finish runs an instance's request on, and takes
    /// over nobody else's work (that is for `flowdesk serve`).
    pub fn open(path: impl AsRef<Path>, user: &str) -> Result<Connection, EngineError> {
        let runtime = Runtime::open(path.as_ref(), RuntimeOptions::default())?;
        Ok(Connection { runtime: Arc::new(runtime), user: user.to_owned() })
    }

    /// A connection through a runtime already open (shared with other
    /// connections), acting as `user`.
    pub fn with_runtime(runtime: Arc<Runtime>, user: &str) -> Connection {
        Connection { runtime, user: user.to_owned() }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn engine(&self) -> &RuntimeEngine {
        self.runtime.engine()
    }

    /// Opens a server item by serial. Needs the process's Server Event right.
    pub fn open_server_item(&self, serial: &str) -> Result<ServerItemHandle<'_>, EngineError> {
        let opened = self.engine().open_server_item(&self.user, serial.parse()?)?;
        Ok(ServerItemHandle { connection: self, opened, changes: Vec::new() })
    }
}

/// An opened server item: its instance's data can be read and set, then the item
/// finished. Changes are sent with the finish, atomically.
pub struct ServerItemHandle<'c> {
    connection: &'c Connection,
    opened: OpenedItem,
    changes: Vec<(String, FieldInput)>,
}

impl ServerItemHandle<'_> {
    pub fn serial(&self) -> String {
        self.opened.item.serial.to_string()
    }

    pub fn item(&self) -> &ServerItem {
        &self.opened.item
    }

    pub fn instance(&self) -> &InstanceSummary {
        &self.opened.instance
    }

    /// The current value of a data field, including changes set on this handle.
    pub fn field(&self, name: &str) -> Option<Value> {
        let (_, field_type, current) = self.opened.fields.iter().find(|(n, _, _)| n == name)?;
        match self.changes.iter().rev().find(|(n, _)| n == name) {
            Some((_, input)) => input.to_value(*field_type, &self.opened.zone).ok(),
            None => Some(current.clone()),
        }
    }

    /// Field names and types, in the process's order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, FieldType)> {
        self.opened.fields.iter().map(|(n, t, _)| (n.as_str(), *t))
    }

    /// Sets a data field, checked against its type at once.
    pub fn set_field(&mut self, name: &str, value: impl Into<FieldInput>) -> Result<(), EngineError> {
        let input = value.into();
        let Some((_, field_type, _)) = self.opened.fields.iter().find(|(n, _, _)| n == name) else {
            return Err(EngineError::InvalidData {
                field: name.to_owned(),
                reason: format!("process `{}` has no such field", self.opened.item.process),
            });
        };
        input
            .to_value(*field_type, &self.opened.zone)
            .map_err(|mismatch| EngineError::InvalidData { field: name.to_owned(), reason: mismatch.to_string() })?;
        self.changes.push((name.to_owned(), input));
        Ok(())
    }

    /// Finishes the item with the fields set on it; the instance runs on.
    pub fn finish(self) -> Result<Finished, EngineError> {
        let serial = self.opened.item.serial;
        self.connection.engine().finish(&self.connection.user, serial, &self.changes)
    }
}
