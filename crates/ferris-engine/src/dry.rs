//! Stand-ins for connectors in a dry build ([`crate::check_job`]): they hold the place of a
//! source or dead-letter writer that was checked but not opened, and are never run.

use arrow::datatypes::SchemaRef;
use ferris_runtime::dead_letter::DeadLetterRecord;
use ferris_runtime::{DeadLetterWriter, Source, SourceError, SourcePoll};

/// A checked source that was not opened: it ends at once.
pub(crate) struct NoSource(pub(crate) SchemaRef);

impl Source for NoSource {
    fn location(&self) -> String {
        "(not opened)".into()
    }

    fn schema(&self) -> SchemaRef {
        self.0.clone()
    }

    fn poll(&mut self, _max_rows: usize) -> Result<SourcePoll, SourceError> {
        Ok(SourcePoll::End)
    }
}

/// A checked dead-letter file that was not opened: it drops what it is given.
pub(crate) struct NoDeadLetters;

impl DeadLetterWriter for NoDeadLetters {
    fn describe(&self) -> String {
        "(not opened)".into()
    }

    fn write(&mut self, _record: &DeadLetterRecord) -> Result<(), String> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}
